// Attacks on the VM network from issue 13 (findings 6, 8, 15, 16), each against the real manager,
// real QEMU VMs and real nftables. Every packet goes to a namespace this file made: the stand-in
// world (its public servers, plus one on a private 10.x address routed into it by a /32) and a
// second namespace "elsewhere" that the host must never route the world into.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ManagerProcess, qemuProcessesOf } from '../harness/manager-process.ts'
import { OutsideWorld } from '../harness/world.ts'
import { guestExec, guestProbe } from '../harness/guest-probe.ts'

const n = process.pid % 250
const world = new OutsideWorld(`x${process.pid % 10000}`, { privateAddress: `10.254.${n}.7` })
const elsewhere = { netns: `rdselse-${process.pid % 10000}`, hostIf: `rdse${process.pid % 10000}`, host: `10.253.${n}.1`, server: `10.253.${n}.2` }
const MAX_CONNECTIONS = 8
let elsewhereServer: ChildProcess | undefined
let mgr: ManagerProcess
let a: string
let b: string

const probe = (vmId: string, targets: string[]) => guestProbe(mgr, vmId, targets)
const exec = (vmId: string, cmd: string) => guestExec(mgr, vmId, cmd)
const pub = () => `${world.serverA}:${world.port}`
const priv = () => `${world.privateAddress}:${world.port}`
const patch = (id: string, body: Record<string, unknown>) => mgr.request('PATCH', `/v1/vms/${id}/network`, body)
const forwarding = (ifname: string) => fs.readFileSync(`/proc/sys/net/ipv4/conf/${ifname}/forwarding`, 'utf8').trim()
const guarded = (): string[] => {
  try {
    const r = JSON.parse(execFileSync('nft', ['-j', 'list', 'set', 'ip', 'rds_forwarding', 'turned_on'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))
    return r.nftables.flatMap((e: { set?: { elem?: string[] } }) => e.set?.elem ?? [])
  } catch {
    return []
  }
}

/** TCP connect from inside a namespace of this file: "open" or the error code. */
function connectFrom(netns: string, host: string, port: number): string {
  const js = `const s=require('net').connect({host:'${host}',port:${port}});s.setTimeout(2500,()=>{console.log('ETIMEDOUT');process.exit()});s.on('connect',()=>{console.log('open');process.exit()});s.on('error',(e)=>{console.log(e.code);process.exit()})`
  return execFileSync('nsenter', [`--net=/run/netns/${netns}`, process.execPath, '-e', js], { encoding: 'utf8' }).trim()
}

// Opens `count` connections one after another and keeps the ones that opened, until
// /tmp/release exists; the results go to /tmp/hold.json as soon as all attempts are done.
const HOLD = `
const net = require('node:net'); const fs = require('node:fs');
const [host, port, count] = process.argv.slice(1); const out = []; const keep = [];
(async () => {
  for (let i = 0; i < Number(count); i++) out.push(await new Promise((done) => {
    const s = net.connect({ host, port: Number(port) });
    s.setTimeout(2500, () => { s.destroy(); done('ETIMEDOUT') });
    s.on('connect', () => { s.setTimeout(0); keep.push(s); done('open') });
    s.on('error', (e) => done(e.code));
  }));
  fs.writeFileSync('/tmp/hold.json', JSON.stringify(out));
  const t = setInterval(() => { if (fs.existsSync('/tmp/release')) { clearInterval(t); keep.forEach((s) => s.destroy()) } }, 100);
})();
`

// Opens and at once resets `count` connections one after another (RST: conntrack forgets them
// at once, so only the rate limit can refuse any).
const CHURN = `
const net = require('node:net'); const [host, port, count] = process.argv.slice(1); const out = {};
(async () => {
  for (let i = 0; i < Number(count); i++) {
    const r = await new Promise((done) => {
      const s = net.connect({ host, port: Number(port) });
      s.setTimeout(2500, () => { s.destroy(); done('ETIMEDOUT') });
      s.on('connect', () => { s.resetAndDestroy(); done('open') });
      s.on('error', (e) => done(e.code));
    });
    out[r] = (out[r] ?? 0) + 1;
  }
  console.log(JSON.stringify(out));
})();
`
const script = (src: string) => `'${src.replace(/'/g, "'\\''")}'`

beforeAll(async () => {
  await world.start()
  // The world's link starts as a host interface that does not forward: the manager needs it
  // forwarding (VM replies arrive there) and must not turn the host into a router through it.
  execFileSync('sysctl', ['-q', '-w', `net.ipv4.conf.${world.hostIf}.forwarding=0`])
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  ip('netns', 'add', elsewhere.netns)
  ip('link', 'add', elsewhere.hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', elsewhere.netns)
  ip('addr', 'add', `${elsewhere.host}/30`, 'dev', elsewhere.hostIf)
  ip('link', 'set', elsewhere.hostIf, 'up')
  ip('-n', elsewhere.netns, 'addr', 'add', `${elsewhere.server}/30`, 'dev', 'eth0')
  ip('-n', elsewhere.netns, 'link', 'set', 'eth0', 'up')
  ip('-n', elsewhere.netns, 'route', 'add', 'default', 'via', elsewhere.host)
  // The world knows the way to "elsewhere" through the host: a router would take it.
  ip('-n', world.netns, 'route', 'add', `${elsewhere.server}/32`, 'via', world.hostAddress)
  elsewhereServer = spawn('nsenter', [`--net=/run/netns/${elsewhere.netns}`, process.execPath, '-e', `require('net').createServer((s)=>s.end('hi')).listen(${world.port},'${elsewhere.server}',()=>console.log('ready'))`], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise((resolve) => elsewhereServer!.stdout!.once('data', resolve))

  mgr = new ManagerProcess({ ...world.managerEnv(), VM_MAX_CONNECTIONS: String(MAX_CONNECTIONS), VM_NEW_CONNECTIONS_PER_SECOND: '1', VM_NEW_CONNECTIONS_BURST: '40' })
  await mgr.start()
  const create = async (body: Record<string, unknown>) => {
    const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, ...body })
    if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}\n${mgr.output}`)
    return r.body.id as string
  }
  ;[a, b] = await Promise.all([create({ allowIps: [], outboundInternet: true }), create({ allowIps: [], outboundInternet: true })])
})

afterAll(async () => {
  await mgr?.cleanup()
  elsewhereServer?.kill('SIGKILL')
  for (const args of [['netns', 'del', elsewhere.netns], ['link', 'del', elsewhere.hostIf]]) {
    try {
      execFileSync('ip', args, { stdio: 'ignore' })
    } catch {
      // gone already
    }
  }
  world.stopSync()
})

describe('finding 6: "internet" means public unicast only', () => {
  it('outboundInternet reaches the public servers but not a private address', async () => {
    expect(await probe(a, [pub(), priv()])).toEqual({ [pub()]: 'open', [priv()]: 'EHOSTUNREACH' })
  })

  it('allowIps naming the private address opens it; 0.0.0.0/0 does not', async () => {
    expect((await patch(a, { allowIps: [`${world.privateAddress}/32`] })).status).toBe(200)
    expect(await probe(a, [pub(), priv()])).toEqual({ [pub()]: 'EHOSTUNREACH', [priv()]: 'open' })
    expect((await patch(a, { allowIps: ['0.0.0.0/0'] })).status).toBe(200)
    expect(await probe(a, [pub(), priv()])).toEqual({ [pub()]: 'open', [priv()]: 'EHOSTUNREACH' })
  })

  it('an allowDomains name answering with a private address opens nothing (DNS rebinding), and the log says so', async () => {
    expect((await patch(a, { allowIps: [], allowDomains: ['*.rebind.test'] })).status).toBe(200)
    const name = `private.rebind.test`
    expect((await exec(a, `getent hosts ${name}`)).stdout).toContain(world.privateAddress)
    expect(await probe(a, [priv()])).toEqual({ [priv()]: 'EHOSTUNREACH' })
    expect(mgr.output).toMatch(/allowDomains answer points into EGRESS_EXCLUDED_CIDRS/)
    // The same rule set still opens what a listed name resolves to publicly.
    expect((await exec(a, 'getent hosts api.rebind.test')).stdout).toContain(world.serverA)
    expect(await probe(a, [pub()])).toEqual({ [pub()]: 'open' })
    expect((await patch(a, { allowIps: [], allowDomains: [], outboundInternet: true })).status).toBe(200)
  })
})

describe('finding 15: a PATCH the host cannot apply changes nothing', () => {
  it('answers 500 network_failed, keeps the stored policy and the rules in force, and never applies it later', async () => {
    // The namespace's handle is gone (an admin's `ip netns del`, a cleanup script): the VMs'
    // QEMU keeps the namespace alive with its rules, but nft cannot be run in it any more.
    const netnsFile = `/run/netns/${mgr.netns}`
    execFileSync('ip', ['netns', 'del', mgr.netns])
    try {
      const r = await patch(a, { outboundInternet: false })
      expect(r.status).toBe(500)
      expect(r.body.code).toBe('network_failed')
      expect(r.body.message).not.toContain('/run/netns')
      const view = await mgr.request('GET', `/v1/vms/${a}/network`)
      expect(view.body).toMatchObject({ outboundInternet: true, effective: { egress: 'all' } })
      expect((await mgr.request('GET', `/v1/vms/${a}`)).body.outboundInternet).toBe(true)
      expect(await probe(a, [pub()])).toEqual({ [pub()]: 'open' })
    } finally {
      fs.writeFileSync(netnsFile, '')
      execFileSync('mount', ['--bind', `/proc/${qemuProcessesOf(mgr.storageRoot)[0]}/ns/net`, netnsFile])
    }
    // A reload for another VM must not slip in the refused policy.
    expect((await patch(b, { outboundInternet: true })).status).toBe(200)
    expect(await probe(a, [pub()])).toEqual({ [pub()]: 'open' })
  })
})

describe('finding 8: a VM cannot fill the conntrack table', () => {
  it('refuses connections beyond VM_MAX_CONNECTIONS while another VM still connects', async () => {
    await exec(a, `rm -f /tmp/hold.json /tmp/release; nohup node -e ${script(HOLD)} ${world.serverA} ${world.port} ${MAX_CONNECTIONS + 4} >/dev/null 2>&1 &`)
    let held: string[] | undefined
    for (let i = 0; i < 120 && !held; i++) {
      const r = await exec(a, 'cat /tmp/hold.json 2>/dev/null')
      if (r.stdout) held = JSON.parse(r.stdout)
    }
    try {
      const open = held!.filter((r) => r === 'open').length
      expect(open).toBeGreaterThan(0)
      expect(open).toBeLessThanOrEqual(MAX_CONNECTIONS)
      // All opens first, then refusals (admin-prohibited), never a timeout.
      expect(held).toEqual([...Array(open).fill('open'), ...Array(held!.length - open).fill('EHOSTUNREACH')])
      expect(await probe(b, [pub()])).toEqual({ [pub()]: 'open' })
    } finally {
      await exec(a, 'touch /tmp/release')
    }
  })

  it('refuses new connections beyond the rate (VM_NEW_CONNECTIONS_PER_SECOND=1, burst 40)', async () => {
    // 200 connections, each reset at once: only the rate can refuse. A rate limit is about time,
    // so this cannot be timeless: it would see no refusal only if 200 connects took over 160 s
    // (refilling all but the burst at 1/s); they took ~45 s on a busy 2-core TCG host.
    const churn = await mgr.request('POST', `/v1/vms/${b}/exec`, { cmd: `node -e ${script(CHURN)} ${world.serverA} ${world.port} 200`, timeoutMs: 120_000 })
    expect(churn.status, JSON.stringify(churn.body)).toBe(200)
    const r = JSON.parse(churn.body.stdout) as Record<string, number>
    expect(Object.keys(r).sort()).toEqual(['EHOSTUNREACH', 'open'])
    expect(r.open).toBeGreaterThanOrEqual(1)
  })
})

describe('finding 16: the host routes for the VMs only', () => {
  it('forwards VM replies on the uplinks but nothing else entering them, and no host-wide switch is needed', async () => {
    // The VMs' traffic works through the world's link (its replies need forwarding there)...
    expect(forwarding(world.hostIf)).toBe('1')
    const hostIf = `rds${mgr.netns.slice(4)}`
    expect(forwarding(hostIf)).toBe('1')
    // (A, not B: the rate test above spent B's new-connection budget.)
    expect(await probe(a, [pub()])).toEqual({ [pub()]: 'open' })
    // ...but the world cannot use the host as a router to another network.
    expect(guarded()).toContain(world.hostIf)
    expect(connectFrom(world.netns, elsewhere.server, world.port)).toBe('ETIMEDOUT')
    // The host table forwards only from and (replies) to the VM link.
    const table = execFileSync('nft', ['list', 'table', 'ip', `rds_${mgr.netns.slice(4)}`], { encoding: 'utf8' })
    const forward = table.slice(table.indexOf('chain forward'), table.indexOf('chain postrouting'))
    expect(forward).toContain(`iifname "${hostIf}" drop`)
    expect(forward).toContain(`oifname "${hostIf}" drop`)
  })

  it('after a clean stop, what the manager turned on is off or still guarded', async () => {
    for (const id of [a, b]) expect((await mgr.request('DELETE', `/v1/vms/${id}`)).status).toBe(204)
    await mgr.stop()
    expect(execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' })).not.toContain(`rds_${mgr.netns.slice(4)}`)
    // Other managers on this host may still need the world's link forwarding; then the guard stays.
    expect(forwarding(world.hostIf) === '0' || guarded().includes(world.hostIf)).toBe(true)
    expect(connectFrom(world.netns, elsewhere.server, world.port)).not.toBe('open')
  })
})
