// Findings 2 and 4 of issue 13 and the corpus's disk fill and connection flood, attacked for real
// from inside a VM as guest root (the test-only root exec hook, RDS_TEST_GUEST_ROOT) or as uid
// 1000: one manager, an attacking VM and a bystander VM. Only sizes and liveness are asserted;
// the figures of each attack are printed.
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AGENT_PID_SH } from '../harness/guest-probe.ts'
import { ManagerProcess } from '../harness/manager-process.ts'

const MiB = 1024 * 1024
const CONSOLE_CAP = 2 * MiB
const CONSOLE_FLOOD = Number(process.env.RDS_ATTACK_CONSOLE_BYTES || 50 * MiB)
const BRIDGE_FLOOD = Number(process.env.RDS_ATTACK_BRIDGE_BYTES || 32 * MiB)
/** What the manager may gain in resident memory during the bridge flood (the unfixed manager queued GiBs). */
const BRIDGE_RSS_BUDGET = 256 * MiB
/** The attacker's disk: small enough to fill in a test, as big as any other VM's would be filled. */
const OVERLAY_SIZE = 128 * MiB
const CONN_FLOOD_MS = Number(process.env.RDS_ATTACK_CONN_FLOOD_MS || 30_000)

let mgr: ManagerProcess
let attacker: string
let bystander: string

async function exec(vmId: string, cmd: string, o: { asRoot?: boolean; timeoutMs?: number } = {}) {
  const timeoutMs = o.timeoutMs ?? 30_000
  return mgr.request('POST', `/v1/vms/${vmId}/${o.asRoot ? 'test-hooks/root-exec' : 'exec'}`, { cmd, timeoutMs })
}

/** Liveness, not timing: retries while the VM's agent is being restarted or its session re-made. */
async function eventually<T>(what: string, f: () => Promise<T | undefined>, tries = 90): Promise<T> {
  let last: unknown
  for (let i = 0; i < tries; i++) {
    try {
      const v = await f()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    await sleep(2000)
  }
  throw new Error(`${what} never happened (${(last as Error)?.message ?? 'no result'})\n${mgr.output.slice(-3000)}`)
}

/**
 * Runs `attack` while checking, once a second until it settles, that the bystander VM's exec and
 * the manager's API answer; returns the attack's result and every check's outcome.
 */
async function whileBystanderChecked<T>(attack: Promise<T>): Promise<{ result: T; checks: string[] }> {
  let settled = false
  const done = attack.finally(() => (settled = true))
  const checks: string[] = []
  while (!settled) {
    const [byst, list] = await Promise.all([exec(bystander, 'echo ok', { timeoutMs: 60_000 }), mgr.request('GET', '/v1/vms')])
    checks.push(`${byst.status}:${String(byst.body.stdout).trim()}:${list.status}`)
    await Promise.race([done, sleep(1000)]).catch(() => undefined)
  }
  return { result: await done, checks }
}

const allocatedOf = (file: string) => fs.statSync(file).blocks * 512

const rssOf = (pid: number, field: 'VmRSS' | 'VmHWM') => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024

async function createVm(): Promise<string> {
  const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [] })
  if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}\n${mgr.output}`)
  return r.body.id
}

beforeAll(async () => {
  mgr = new ManagerProcess({ RDS_TEST_GUEST_ROOT: 'true', CONSOLE_LOG_MAX_BYTES: String(CONSOLE_CAP), MAX_EXEC_TIMEOUT_MS: '600000', OVERLAY_SIZE_BYTES: String(OVERLAY_SIZE) })
  await mgr.start()
  ;[attacker, bystander] = await Promise.all([createVm(), createVm()])
}, 300_000)

afterAll(async () => {
  await mgr?.cleanup()
})

describe('hostile guest root', () => {
  it('/proc hides root\'s processes from uid 1000 (hidepid=2); root sees the agent, shielded from the OOM killer', async () => {
    const asRoot = await exec(attacker, `p=$(${AGENT_PID_SH}); echo $p; cat /proc/$p/oom_score_adj`, { asRoot: true })
    const [pid, adj] = asRoot.body.stdout.trim().split('\n')
    expect(pid).toMatch(/^\d+$/)
    expect(adj).toBe('-1000')
    const asUser = await exec(attacker, `ls /proc | grep -cx '${pid}'; cat /proc/${pid}/environ /proc/${pid}/cmdline /proc/1/cmdline 2>&1 >/dev/null | wc -l; ${AGENT_PID_SH} | wc -l`)
    console.log(`hidepid: agent pid ${pid} as uid 1000: ${JSON.stringify(asUser.body.stdout)} (listed, failed reads, found by cmdline scan)`)
    expect(asUser.body.stdout).toBe('0\n3\n0\n')
  })

  it('the agent runs V8 without its JIT (no memory both writable and executable in that root process); user code keeps its JIT', async () => {
    const asRoot = await exec(attacker, `p=$(${AGENT_PID_SH}); tr '\\0' ' ' < /proc/$p/cmdline; echo; grep -c ' rwxp ' /proc/$p/maps`, { asRoot: true })
    const [cmdline, rwx] = asRoot.body.stdout.trim().split('\n')
    expect(cmdline!.trim().split(' ')).toEqual(['/usr/local/bin/node', '--jitless', '/opt/rds/agent/agent.js'])
    expect(rwx).toBe('0')
    // The flag is the agent's own: the user's Node starts without it (a jitless V8 has no WebAssembly).
    const user = await exec(attacker, `node -e "console.log(JSON.stringify([process.execArgv.includes('--jitless'), typeof WebAssembly]))"`)
    expect(JSON.parse(user.body.stdout)).toEqual([false, 'object'])
  })

  it('floods /dev/console: the console log stays within CONSOLE_LOG_MAX_BYTES and /logs shows the newest lines', async () => {
    const logFile = path.join(mgr.storageRoot, 'vms', attacker, 'console.log')
    const marker = `rds-console-tail-${Math.random().toString(36).slice(2)}`
    // 120-column lines of a repeated letter: as much as possible through the tty per byte.
    const flood = `head -c ${CONSOLE_FLOOD} /dev/zero | tr '\\0' x | fold -w 120 > /dev/console; echo ${marker} > /dev/console`
    const r = await exec(attacker, flood, { asRoot: true, timeoutMs: 600_000 })
    expect(r.status).toBe(200)
    expect(r.body.exitCode).toBe(0)
    const logs = await eventually('the marker in /logs', async () => {
      const l = await mgr.request('GET', `/v1/vms/${attacker}/logs?type=console.log&tailLines=5`)
      return l.status === 200 && l.body.lines.some((x: string) => x.includes(marker)) ? l.body : undefined
    })
    const sizes = [logFile, `${logFile}.1`].map((f) => (fs.existsSync(f) ? fs.statSync(f).size : 0))
    console.log(`console flood: guest root wrote ${CONSOLE_FLOOD / MiB} MiB to /dev/console; console.log ${sizes[0]} B + console.log.1 ${sizes[1]} B (cap ${CONSOLE_CAP} B); /logs tail: ${JSON.stringify(logs.lines.at(-1))}`)
    expect(sizes[0] + sizes[1]).toBeLessThanOrEqual(CONSOLE_CAP)
    expect(logs.truncated).toBe(true)
    // The attacking VM's agent still answers, as uid 1000.
    expect((await exec(attacker, 'echo alive')).body.stdout).toBe('alive\n')
  }, 900_000)

  it('floods its bridge port without reading replies: the manager stays bounded and answers, the other VM works', async () => {
    const pid = mgr.pid!
    const rssBefore = rssOf(pid, 'VmRSS')
    // The flooder kills the agent (root can), takes the freed bridge port before the init restarts
    // the agent, writes request frames non-blocking and never reads the replies. It stops when
    // everything is written or when the port has stayed full for a while (the host stopped reading).
    const flooder = `
const fs = require('node:fs');
const wait = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const sys = '/sys/class/virtio-ports';
const nameOf = (e) => { try { return fs.readFileSync(sys + '/' + e + '/name', 'utf8').trim(); } catch { return ''; } };
const dev = '/dev/' + fs.readdirSync(sys).find((e) => nameOf(e) === 'rds.bridge');
const agent = fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p) && p !== '1').find((p) => { try { return fs.readFileSync('/proc/' + p + '/cmdline', 'utf8').includes('/opt/rds/agent/agent.js'); } catch { return false; } });
process.kill(Number(agent), 'SIGKILL');
let fd;
for (;;) { try { fd = fs.openSync(dev, fs.constants.O_RDWR | fs.constants.O_NONBLOCK); break; } catch (e) { if (e.code !== 'EBUSY') throw e; wait(1); } }
const total = Number(process.argv[2]);
const frames = Buffer.from('{"id":1}\\n'.repeat(7000));
let sent = 0, idle = 0;
while (sent < total && idle < 200) {
  try { sent += fs.writeSync(fd, frames, 0, Math.min(frames.length, total - sent)); idle = 0; }
  catch (e) { if (e.code !== 'EAGAIN') throw e; idle++; wait(50); }
}
fs.writeFileSync('/tmp/flood.json', JSON.stringify({ sent, stalled: sent < total }));
fs.closeSync(fd);
`
    const script = Buffer.from(flooder).toString('base64')
    const start = await exec(attacker, `echo ${script} | base64 -d > /tmp/flooder.js && rm -f /tmp/flood.json && (setsid node /tmp/flooder.js ${BRIDGE_FLOOD} > /tmp/flooder.log 2>&1 < /dev/null &)`, { asRoot: true })
    expect(start.status).toBe(200)

    // While the flood runs: the manager answers and the other VM's exec works.
    expect((await mgr.request('GET', '/v1/vms')).status).toBe(200)
    expect((await exec(bystander, 'echo bystander')).body.stdout).toBe('bystander\n')

    const result = await eventually('the flooder to finish', async () => {
      const r = await exec(attacker, 'cat /tmp/flood.json 2>/dev/null || true; cat /tmp/flooder.log 2>/dev/null >&2', { asRoot: true, timeoutMs: 10_000 })
      return r.status === 200 && r.body.stdout ? (JSON.parse(r.body.stdout) as { sent: number; stalled: boolean }) : undefined
    })
    const peak = rssOf(pid, 'VmHWM')
    const grown = peak - rssBefore
    console.log(`bridge flood: guest root offered ${BRIDGE_FLOOD / MiB} MiB of request frames, its port accepted ${(result.sent / MiB).toFixed(2)} MiB (port stayed full at the end: ${result.stalled}); manager RSS ${(rssBefore / MiB).toFixed(0)} MiB before, peak ${(peak / MiB).toFixed(0)} MiB (+${(grown / MiB).toFixed(0)} MiB, budget ${BRIDGE_RSS_BUDGET / MiB} MiB)`)
    expect(grown).toBeLessThan(BRIDGE_RSS_BUDGET)

    // After the attack: the manager answers, the bystander works, the attacker's restarted agent answers.
    expect((await mgr.request('GET', `/v1/vms/${attacker}`)).status).toBe(200)
    expect((await exec(bystander, 'echo still')).body.stdout).toBe('still\n')
    const again = await eventually('the attacking VM to answer again', async () => {
      const r = await exec(attacker, 'echo back', { timeoutMs: 10_000 })
      return r.status === 200 ? r.body.stdout : undefined
    })
    expect(again).toBe('back\n')
  }, 900_000)

  it('fills its disk until ENOSPC: the host file of its overlay never outgrows the disk size; the manager and another VM answer', async () => {
    const overlay = path.join(mgr.storageRoot, 'vms', attacker, 'overlay.ext4')
    const size = fs.statSync(overlay).size
    let largest = size
    let mostAllocated = allocatedOf(overlay)
    const watch = setInterval(() => {
      largest = Math.max(largest, fs.statSync(overlay).size)
      mostAllocated = Math.max(mostAllocated, allocatedOf(overlay))
    }, 100)
    const t0 = Date.now()
    // Guest root: also the blocks ext4 keeps for root. Zeros, so every block is really written.
    const fill = exec(attacker, 'dd if=/dev/zero of=/fill bs=1M 2>&1 | grep -E "No space|copied"; sync; df -B1 / | tail -1', { asRoot: true, timeoutMs: 600_000 })
    const { result, checks } = await whileBystanderChecked(fill)
    const seconds = (Date.now() - t0) / 1000
    clearInterval(watch)
    largest = Math.max(largest, fs.statSync(overlay).size)
    mostAllocated = Math.max(mostAllocated, allocatedOf(overlay))
    console.log(`disk fill: guest root wrote until ENOSPC in ${seconds.toFixed(1)} s (${JSON.stringify(result.body.stdout)}); host overlay file ${size} B virtual size, largest seen ${largest} B, most allocated ${mostAllocated} B; ${checks.length} bystander/manager checks meanwhile: ${[...new Set(checks)].join(', ')}`)
    expect(result.status).toBe(200)
    expect(result.body.stdout).toMatch(/No space left on device/)
    expect(largest).toBe(size)
    expect(mostAllocated).toBeLessThanOrEqual(size)
    expect(checks.length).toBeGreaterThan(0)
    expect(new Set(checks)).toEqual(new Set(['200:ok:200']))
    // The full disk is the attacker's alone: its agent answers, and uid 1000 gets room back once root frees it.
    expect((await exec(attacker, 'rm -f /fill && echo freed', { asRoot: true })).body.stdout).toBe('freed\n')
    expect((await exec(attacker, 'echo alive')).body.stdout).toBe('alive\n')
  }, 900_000)

  it('floods the host-side endpoints it can reach with connections: another VM and the manager keep answering', async () => {
    // DNS on: the gateway's forwarder listens on TCP 53 for this VM (the most it can reach on the host).
    expect((await mgr.request('PATCH', `/v1/vms/${attacker}/network`, { allowIps: [], allowDomains: ['example.com'] })).status).toBe(200)
    const flood = `
const net = require('node:net'); const fs = require('node:fs');
const gw = /nameserver\\s+(\\S+)/.exec(fs.readFileSync('/etc/resolv.conf', 'utf8'))[1];
const ports = [53, 53, 53, 80, 443, 22, 3000, 8080];
const out = { gateway: gw, tried: 0, connected: 0, refused: 0, timedOut: 0, otherErrors: {}, heldAtEnd: 0, connectedByPort: {} };
const held = [];
const end = Date.now() + Number(process.argv[1]);
const one = () => {
  if (Date.now() > end) return;
  const port = ports[out.tried++ % ports.length];
  let settled = false;
  const settle = (what) => { if (settled) return; settled = true; clearTimeout(t); what(); setImmediate(one); };
  const c = net.connect({ host: gw, port });
  const t = setTimeout(() => settle(() => { out.timedOut++; c.destroy(); }), 3000);
  c.on('connect', () => settle(() => { out.connected++; out.connectedByPort[port] = (out.connectedByPort[port] || 0) + 1; held.push(c); }));
  c.on('error', (e) => settle(() => { if (e.code === 'ECONNREFUSED') out.refused++; else out.otherErrors[e.code] = (out.otherErrors[e.code] || 0) + 1; }));
};
for (let i = 0; i < 256; i++) one();
setTimeout(() => { out.heldAtEnd = held.filter((c) => !c.destroyed && c.readyState === 'open').length; console.log(JSON.stringify(out)); process.exit(0); }, Number(process.argv[1]) + 3500);
`
    const cmd = `node -e '${flood.replace(/'/g, "'\\''")}' ${CONN_FLOOD_MS}`
    const { result, checks } = await whileBystanderChecked(exec(attacker, cmd, { timeoutMs: CONN_FLOOD_MS + 60_000 }))
    expect(result.status).toBe(200)
    const counts = JSON.parse(result.body.stdout) as { tried: number; connected: number; heldAtEnd: number }
    console.log(`connection flood: uid 1000 for ${CONN_FLOOD_MS / 1000} s against the gateway (DNS TCP 53 and 80/443/22/3000/8080): ${JSON.stringify(counts)}; ${checks.length} bystander/manager checks meanwhile: ${[...new Set(checks)].join(', ')}`)
    expect(counts.tried).toBeGreaterThan(256)
    expect(checks.length).toBeGreaterThan(0)
    expect(new Set(checks)).toEqual(new Set(['200:ok:200']))
    expect((await exec(attacker, 'echo alive')).body.stdout).toBe('alive\n')
  }, 900_000)
})
