// Findings 2 and 4 of issue 13, attacked for real from inside a VM as guest root (the test-only
// root exec hook, RDS_TEST_GUEST_ROOT): one manager, an attacking VM and a bystander VM.
// Only sizes and liveness are asserted; the figures of each attack are printed.
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ManagerProcess } from '../harness/manager-process.ts'

const MiB = 1024 * 1024
const CONSOLE_CAP = 2 * MiB
const CONSOLE_FLOOD = Number(process.env.RDS_ATTACK_CONSOLE_BYTES || 50 * MiB)
const BRIDGE_FLOOD = Number(process.env.RDS_ATTACK_BRIDGE_BYTES || 32 * MiB)
/** What the manager may gain in resident memory during the bridge flood (the unfixed manager queued GiBs). */
const BRIDGE_RSS_BUDGET = 256 * MiB

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

const rssOf = (pid: number, field: 'VmRSS' | 'VmHWM') => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024

async function createVm(): Promise<string> {
  const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [] })
  if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}\n${mgr.output}`)
  return r.body.id
}

beforeAll(async () => {
  mgr = new ManagerProcess({ RDS_TEST_GUEST_ROOT: 'true', CONSOLE_LOG_MAX_BYTES: String(CONSOLE_CAP), MAX_EXEC_TIMEOUT_MS: '600000' })
  await mgr.start()
  ;[attacker, bystander] = await Promise.all([createVm(), createVm()])
}, 300_000)

afterAll(async () => {
  await mgr?.cleanup()
})

describe('hostile guest root', () => {
  it('/proc hides root\'s processes from uid 1000 (hidepid=2); root sees the agent, shielded from the OOM killer', async () => {
    const agentPid = "for f in $(grep -la '/opt/rds/agent/agen[t].js' /proc/[0-9]*/cmdline); do f=${f#/proc/}; echo ${f%/cmdline}; done"
    const asRoot = await exec(attacker, `p=$(${agentPid}); echo $p; cat /proc/$p/oom_score_adj`, { asRoot: true })
    const [pid, adj] = asRoot.body.stdout.trim().split('\n')
    expect(pid).toMatch(/^\d+$/)
    expect(adj).toBe('-1000')
    const asUser = await exec(attacker, `ls /proc | grep -cx '${pid}'; cat /proc/${pid}/environ /proc/${pid}/cmdline /proc/1/cmdline 2>&1 >/dev/null | wc -l; ${agentPid} | wc -l`)
    console.log(`hidepid: agent pid ${pid} as uid 1000: ${JSON.stringify(asUser.body.stdout)} (listed, failed reads, found by cmdline scan)`)
    expect(asUser.body.stdout).toBe('0\n3\n0\n')
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
})
