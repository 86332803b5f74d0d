// VM networking for real: QEMU VMs on TAPs in the manager's namespace, nftables on the host, and
// a stand-in "outside world" namespace (harness/world.ts) with HTTP and DNS servers. No packet
// leaves the namespaces this test made. Guest root comes from the test-only root exec hook
// (RDS_TEST_GUEST_ROOT), to show that root inside a VM gains nothing against the host.
import { execFileSync } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import path from 'node:path'
import { ManagerProcess } from '../harness/manager-process.ts'
import { openDatabase } from '../../src/store/db.ts'
import { createVmsRepo } from '../../src/store/vms-repo.ts'
import { OutsideWorld } from '../harness/world.ts'
import { guestExec, guestProbe } from '../harness/guest-probe.ts'

const world = new OutsideWorld()
let mgr: ManagerProcess
let hostService: http.Server
let hostPort: number
let a: { id: string; ip: string }
let b: { id: string; ip: string }
let gateway: string

async function exec(vmId: string, cmd: string, asRoot = false) {
  return guestExec(mgr, vmId, cmd, asRoot)
}

const probe = (vmId: string, targets: string[], asRoot = false) => guestProbe(mgr, vmId, targets, asRoot)

const resolves = async (vmId: string, name: string) => (await exec(vmId, `getent hosts ${name}`)).stdout.trim().split(/\s+/)[0] ?? ''

const nsLinks = (netns: string): string => execFileSync('ip', ['-n', netns, '-d', 'link', 'show'], { encoding: 'utf8' })
const nsRules = (netns: string): string => execFileSync('nsenter', [`--net=/run/netns/${netns}`, 'nft', 'list', 'ruleset'], { encoding: 'utf8' })

async function createVm(body: Record<string, unknown>): Promise<{ id: string; ip: string }> {
  const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, ...body })
  if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}\n${mgr.output}`)
  return { id: r.body.id, ip: r.body.guestIp }
}

beforeAll(async () => {
  await world.start()
  // A service on the host, on every host address: VMs must not reach it unless allowed.
  hostService = http.createServer((_q, res) => res.end('host'))
  await new Promise<void>((r) => hostService.listen(0, '0.0.0.0', () => r()))
  hostPort = (hostService.address() as AddressInfo).port
  mgr = new ManagerProcess({ ...world.managerEnv(), RDS_TEST_GUEST_ROOT: 'true' })
  await mgr.start()
  ;[a, b] = await Promise.all([createVm({ allowIps: [world.serverA] }), createVm({ allowIps: [], outboundInternet: false })])
  gateway = (await mgr.request('GET', `/v1/vms/${a.id}/network`)).body.gateway
})

afterAll(async () => {
  await mgr?.cleanup()
  hostService?.close()
  world.stopSync()
})

const serverA = () => `${world.serverA}:${world.port}`
const serverB = () => `${world.serverB}:${world.port}`

describe('VM networking', () => {
  it('gives each VM its own address, the gateway and DNS, set by the host', async () => {
    expect(a.ip).toMatch(/^10\.202\.\d+\.\d+$/)
    expect(b.ip).not.toBe(a.ip)
    const n = await mgr.request('GET', `/v1/vms/${a.id}/network`)
    expect(n.body).toMatchObject({ guestIp: a.ip, allowIps: [world.serverA], outboundInternet: false, effective: { egress: 'list', dns: 'none', gatewayServices: false } })
    const r = await exec(a.id, 'ip -4 -o addr show dev eth0; ip route show default; cat /etc/resolv.conf')
    expect(r.stdout).toContain(`inet ${a.ip}/24`)
    expect(r.stdout).toContain(`default via ${gateway}`)
    expect(r.stdout).toContain(`nameserver ${gateway}`)
  })

  it('allowIps: only the listed destinations, no DNS, no host, no other VM', async () => {
    const r = await probe(a.id, [serverA(), serverB(), `${world.hostAddress}:${hostPort}`, `${gateway}:${hostPort}`, `${b.ip}:22`])
    expect(r).toEqual({
      [serverA()]: 'open',
      [serverB()]: 'EHOSTUNREACH',
      [`${world.hostAddress}:${hostPort}`]: 'EHOSTUNREACH',
      [`${gateway}:${hostPort}`]: 'EHOSTUNREACH',
      // The guest's own ARP fails first here; the root test below routes it to the host.
      [`${b.ip}:22`]: expect.stringMatching(/EHOSTUNREACH|ETIMEDOUT/),
    })
    expect(await resolves(a.id, 'www.example.test')).toBe('')
  })

  it('no allowIps and no outboundInternet: nothing at all', async () => {
    const r = await probe(b.id, [serverA(), serverB(), `${gateway}:${hostPort}`, `${gateway}:53`])
    expect(Object.values(r)).toEqual(['EHOSTUNREACH', 'EHOSTUNREACH', 'EHOSTUNREACH', 'EHOSTUNREACH'])
    expect(await resolves(b.id, 'www.example.test')).toBe('')
  })

  it('PATCH changes the policy of a running VM at once; outboundInternet opens the world and DNS but never the host', async () => {
    const p = await mgr.request('PATCH', `/v1/vms/${b.id}/network`, { outboundInternet: true })
    expect(p.status).toBe(200)
    expect(p.body.effective).toEqual({ egress: 'all', dns: 'all', gatewayServices: false })
    expect((await mgr.request('GET', `/v1/vms/${b.id}`)).body.outboundInternet).toBe(true)
    const r = await probe(b.id, [serverA(), serverB(), `${world.hostAddress}:${hostPort}`, `${gateway}:${hostPort}`])
    expect(r).toEqual({ [serverA()]: 'open', [serverB()]: 'open', [`${world.hostAddress}:${hostPort}`]: 'ETIMEDOUT', [`${gateway}:${hostPort}`]: 'EHOSTUNREACH' })
    expect(await resolves(b.id, 'www.example.test')).toBe(world.serverA)
    // The world sees the host's address (masquerade), not the VM's.
    const seen = await exec(b.id, `node -e "fetch('http://${serverA()}/').then(r=>r.text()).then(console.log)"`)
    expect(JSON.parse(seen.stdout)).toEqual({ server: world.serverA, client: world.hostAddress })

    const back = await mgr.request('PATCH', `/v1/vms/${b.id}/network`, { outboundInternet: false })
    expect(back.body.effective.egress).toBe('none')
    expect(Object.values(await probe(b.id, [serverA()]))).toEqual(['EHOSTUNREACH'])
  })

  it('the host is reachable only through the gateway, and only when allowIps names it', async () => {
    const p = await mgr.request('PATCH', `/v1/vms/${a.id}/network`, { allowIps: [world.serverA, `${gateway}/32`] })
    expect(p.body.effective).toMatchObject({ egress: 'list', gatewayServices: true })
    const r = await probe(a.id, [`${gateway}:${hostPort}`, `${world.hostAddress}:${hostPort}`, serverA(), `${gateway}:${mgr.port}`])
    expect(r).toEqual({
      [`${gateway}:${hostPort}`]: 'open',
      [`${world.hostAddress}:${hostPort}`]: 'EHOSTUNREACH',
      [serverA()]: 'open',
      // The manager's own port is dropped on the host whatever the policy (else: ECONNREFUSED).
      [`${gateway}:${mgr.port}`]: 'ETIMEDOUT',
    })
    // B was not given the gateway.
    expect(Object.values(await probe(b.id, [`${gateway}:${hostPort}`]))).toEqual(['EHOSTUNREACH'])
    await mgr.request('PATCH', `/v1/vms/${a.id}/network`, { allowIps: [world.serverA] })
  })

  it('allowDomains: only those names resolve, and only what they resolved to becomes reachable', async () => {
    const p = await mgr.request('PATCH', `/v1/vms/${a.id}/network`, { allowIps: [], allowDomains: ['api.example.test'] })
    expect(p.body).toMatchObject({ allowDomains: ['api.example.test'], effective: { egress: 'list', dns: 'listed', gatewayServices: false } })
    expect(await probe(a.id, [serverA()])).toEqual({ [serverA()]: 'EHOSTUNREACH' })
    expect(await resolves(a.id, 'api.example.test')).toBe(world.serverA)
    expect(await probe(a.id, [serverA(), serverB()])).toEqual({ [serverA()]: 'open', [serverB()]: 'EHOSTUNREACH' })
    expect(await resolves(a.id, 'b.other.test')).toBe('')
    expect(await resolves(a.id, 'x.api.example.test')).toBe('')

    // A new list replaces the old one at once, resolved addresses included.
    await mgr.request('PATCH', `/v1/vms/${a.id}/network`, { allowDomains: ['*.other.test'] })
    expect(await resolves(a.id, 'b.other.test')).toBe(world.serverB)
    expect(await probe(a.id, [serverA(), serverB()])).toEqual({ [serverA()]: 'EHOSTUNREACH', [serverB()]: 'open' })
    const bad = await mgr.request('PATCH', `/v1/vms/${a.id}/network`, { allowDomains: ['not a domain'] })
    expect(bad.status).toBe(400)
    expect(bad.body.code).toBe('invalid_allow_domains')
    await mgr.request('PATCH', `/v1/vms/${a.id}/network`, { allowIps: [world.serverA], allowDomains: [] })
  })

  it('refuses bad allowIps with a clear 400 and changes nothing', async () => {
    for (const entry of ['nope', '1.2.3.4/33', '300.1.1.1', '::1', b.ip]) {
      const r = await mgr.request('PATCH', `/v1/vms/${a.id}/network`, { allowIps: [entry] })
      expect(r.status, entry).toBe(400)
      expect(r.body.code).toBe('invalid_allow_ips')
      expect(r.body.message).toContain(JSON.stringify(entry))
    }
    const c = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: ['10.0.0.0/8', 'bad'] })
    expect(c.status).toBe(400)
    expect(c.body.code).toBe('invalid_allow_ips')
    expect((await mgr.request('GET', `/v1/vms/${a.id}/network`)).body.allowIps).toEqual([world.serverA])
    expect((await mgr.request('GET', '/v1/vms')).body).toHaveLength(2)
  })

  it('guest root changing routes, address or MAC gains nothing', async () => {
    // A route to the other VM through the gateway: the host rejects it.
    await exec(a.id, `ip route add ${b.ip}/32 via ${gateway}`, true)
    expect(await probe(a.id, [`${b.ip}:22`], true)).toEqual({ [`${b.ip}:22`]: 'EHOSTUNREACH' })
    // A new MAC with the right address: the policy is unchanged (it follows the TAP).
    await exec(a.id, 'ip link set dev eth0 down && ip link set dev eth0 address 02:00:00:00:00:99 && ip link set dev eth0 up', true)
    await exec(a.id, `ip route replace default via ${gateway} dev eth0`, true)
    expect(await probe(a.id, [serverA(), serverB()], true)).toEqual({ [serverA()]: 'open', [serverB()]: 'EHOSTUNREACH' })
    // Another VM's address, then an unused one: dropped at the TAP, even towards an allowed server.
    for (const spoofed of [b.ip, a.ip.replace(/\d+$/, '250')]) {
      await exec(a.id, `ip addr flush dev eth0 && ip addr add ${spoofed}/24 dev eth0 && ip route replace default via ${gateway} dev eth0`, true)
      expect(await probe(a.id, [serverA()], true), spoofed).toEqual({ [serverA()]: 'ETIMEDOUT' })
    }
    // IPv6 goes nowhere either.
    const v6 = await exec(a.id, 'ip -6 addr add fd00::2/64 dev eth0 2>&1; ip -6 route add default dev eth0 2>&1; timeout 3 node -e "require(\'net\').connect({host:\'fd00::1\',port:80}).on(\'connect\',()=>console.log(\'open\')).on(\'error\',e=>console.log(e.code))"', true)
    expect(v6.stdout).not.toContain('open')
  })

  it('leaves no TAP or rule behind after delete, and sweeps strays after kill -9 and restart', async () => {
    expect(nsRules(mgr.netns).match(/chain vm-[0-9a-f]{12}/g)).toHaveLength(2)
    expect(nsLinks(mgr.netns).match(/tun type tap/g)).toHaveLength(2)
    expect((await mgr.request('DELETE', `/v1/vms/${a.id}`)).status).toBe(204)
    expect(nsRules(mgr.netns).match(/chain vm-[0-9a-f]{12}/g)).toHaveLength(1)
    expect(nsLinks(mgr.netns).match(/tun type tap/g)).toHaveLength(1)

    // A stray TAP no VM owns, then a hard kill: the restarted manager removes it and re-attaches B with its network.
    execFileSync('ip', ['-n', mgr.netns, 'tuntap', 'add', 'dev', 'vm0000deadbeef', 'mode', 'tap'])
    await mgr.stop('SIGKILL')
    await mgr.start()
    expect(nsLinks(mgr.netns)).not.toContain('vm0000deadbeef')
    expect(nsLinks(mgr.netns).match(/tun type tap/g)).toHaveLength(1)
    await mgr.request('PATCH', `/v1/vms/${b.id}/network`, { allowIps: [world.serverB] })
    expect(await probe(b.id, [serverA(), serverB()])).toEqual({ [serverA()]: 'EHOSTUNREACH', [serverB()]: 'open' })

    // The address of the deleted VM is free again.
    const c = await createVm({ allowIps: [] })
    expect(c.ip).toBe(a.ip)
    for (const id of [b.id, c.id]) expect((await mgr.request('DELETE', `/v1/vms/${id}`)).status).toBe(204)

    // With no VM left, a clean stop removes the namespace, the host table and the route.
    await mgr.stop()
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(mgr.netns)
    expect(execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' })).not.toContain(`rds_${mgr.netns.slice(4)}`)
    expect(execFileSync('ip', ['-4', 'route'], { encoding: 'utf8' })).not.toContain(a.ip.replace(/\.\d+$/, '.0/24'))
  })
})

describe('VM addresses', () => {
  it('a create finds the address pool exhausted: 503 with a clear message, nothing created', async () => {
    const small = new ManagerProcess({ VM_NETWORK_CIDR: '10.203.7.0/29', VM_LINK_CIDR: '169.254.203.0/30' })
    try {
      // Five stopped VMs hold all five addresses of the /29 (rows only: nothing needs to boot).
      await small.start()
      await small.stop()
      const { db } = await openDatabase({ sqlitePath: path.join(small.storageRoot, 'manager.db') })
      const repo = createVmsRepo(db)
      for (let i = 0; i < 5; i++) {
        const id = `00000000-0000-4000-8000-00000000000${i}`
        const now = new Date().toISOString()
        await repo.insertWithinQuota({ id, state: 'STOPPED', cpu: 1, memMb: 256, imageId: 'none', guestIp: `10.203.7.${i + 2}`, allowIps: [], allowDomains: [], secretEnv: null, outboundInternet: false, provisionMode: 'boot', createdAt: now, startedAt: null, bootMs: null, lastError: null, vmmPid: null, vmmStartTime: null, purpose: 'user', memorySnapshotId: null, sourceSnapshotId: null, inheritedSecretNames: [], createdBy: null, expiresAt: null, ttlSeconds: null, onExpire: 'delete', labels: {} }, { maxVms: 100 })
      }
      await db.destroy()
      await small.start()
      const r = await small.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
      expect(r.status).toBe(503)
      expect(r.body).toEqual({ code: 'address_pool_exhausted', message: expect.stringContaining('all 5 addresses'), requestId: expect.any(String) })
      expect((await small.request('GET', '/v1/vms')).body).toHaveLength(5)
      expect(execFileSync('ip', ['-n', small.netns, '-d', 'link', 'show'], { encoding: 'utf8' }).match(/tun type tap/g)).toHaveLength(5)
    } finally {
      await small.cleanup()
    }
  })
})
