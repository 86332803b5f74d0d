// Reclamation of a dead manager instance's leftovers (runtime/reclaim), on real namespaces, veths,
// routes, nft tables and /dev/shm directories made here for fake instances, exactly as
// host-network.ts names and builds them. Addresses are test-only: VM networks 10.203.2xx.0/24
// and links in 169.254.203.0/24, with nothing behind them; no packet is sent. No VM is needed.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import dgram from 'node:dgram'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { createAddressPlan } from '../../src/runtime/network/address-plan.ts'
import { hostIfOf, netnsOf } from '../../src/runtime/network/host-network.ts'
import { hostRuleset, hostTableName } from '../../src/runtime/network/nft-ruleset.ts'
import { instanceOf, tryHoldMark } from '../../src/runtime/reclaim/instance-mark.ts'
import { findLeftovers, holdOwnMark, InstanceTakenError, reclaimInstance } from '../../src/runtime/reclaim/stale-instances.ts'
import { detectCgroupLayout, VmmCgroups, vmmLimits } from '../../src/runtime/vmm/confinement/cgroups.ts'

const canRun = process.getuid?.() === 0
const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
const made: string[] = []
const children: ChildProcess[] = []

interface Fake {
  instance: string
  vmNet: string
  hostLink: string
}

/** What a manager stopped with VMs leaves: namespace, veth, address, route, host table, RAM dir. */
function leaveBehind(slot: number): Fake {
  const instance = `fa${crypto.randomBytes(4).toString('hex')}`
  made.push(instance)
  const plan = createAddressPlan(`10.203.${200 + slot}.0/24`, `169.254.203.${slot * 4}/30`)
  const netns = netnsOf(instance)
  const hostIf = hostIfOf(instance)
  ip('netns', 'add', netns)
  ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'uplink', 'netns', netns)
  ip('-n', netns, 'addr', 'add', `${plan.nsLink}/30`, 'dev', 'uplink')
  ip('-n', netns, 'link', 'set', 'uplink', 'up')
  ip('addr', 'add', `${plan.hostLink}/30`, 'dev', hostIf)
  ip('link', 'set', hostIf, 'up')
  ip('route', 'add', `10.203.${200 + slot}.0/24`, 'via', plan.nsLink, 'dev', hostIf)
  execFileSync('nft', ['-f', '-'], { input: hostRuleset(plan, instance, hostIf, 3000, { maxConnections: 512, newPerSecond: 100, newBurst: 200 }) })
  fs.mkdirSync(`/dev/shm/${netns}`, { mode: 0o700 })
  fs.writeFileSync(`/dev/shm/${netns}/vm-1.ram`, 'ram')
  return { instance, vmNet: `10.203.${200 + slot}.0/24`, hostLink: plan.hostLink }
}

/** What of the fake instance is still on the host. */
function present(f: Fake): string[] {
  const out: string[] = []
  if (ip('netns', 'list').includes(netnsOf(f.instance))) out.push('netns')
  if (ip('-o', 'link', 'show').includes(`${hostIfOf(f.instance)}@`)) out.push('veth')
  if (ip('route', 'show', f.vmNet).trim()) out.push('route')
  if (execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }).includes(hostTableName(f.instance))) out.push('table')
  if (fs.existsSync(`/dev/shm/${netnsOf(f.instance)}`)) out.push('ram dir')
  return out
}

const EVERYTHING = ['netns', 'veth', 'route', 'table', 'ram dir']

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  await new Promise((resolve) => child.once('exit', resolve))
}

const silent = { info: () => {}, warn: () => {} }

/** A process of its own that holds the instance's mark, as a manager does (or a squatter, as another uid). */
async function markHolder(instance: string, uid?: number): Promise<ChildProcess> {
  const mod = path.resolve(import.meta.dirname, '../../src/runtime/reclaim/instance-mark.ts')
  const child = spawn(process.execPath, ['-e', `import(${JSON.stringify(mod)}).then((m) => m.tryHoldMark(${JSON.stringify(instance)})).then((r) => { console.log('mark' in r ? 'held' : 'busy'); setInterval(() => {}, 1000) })`], { stdio: ['ignore', 'pipe', 'inherit'], ...(uid === undefined ? {} : { uid, gid: uid }) })
  children.push(child)
  const line = await new Promise<string>((resolve) => child.stdout!.once('data', (d) => resolve(String(d).trim())))
  expect(line).toBe('held')
  return child
}

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL')
  await Promise.all(children.map(exited))
  for (const instance of made) {
    for (const args of [['ip', 'link', 'del', hostIfOf(instance)], ['ip', 'netns', 'del', netnsOf(instance)], ['nft', 'delete', 'table', 'ip', hostTableName(instance)]]) {
      try {
        execFileSync(args[0]!, args.slice(1), { stdio: 'ignore' })
      } catch {
        // reclaimed, as it should be
      }
    }
    fs.rmSync(`/dev/shm/${netnsOf(instance)}`, { recursive: true, force: true })
  }
})

describe.skipIf(!canRun)('stale instances', () => {
  it('finds every leftover of an instance and removes them all when nothing of it is alive', async () => {
    const f = leaveBehind(1)
    expect(present(f)).toEqual(EVERYTHING)
    expect((await findLeftovers()).find((l) => l.instance === f.instance)).toEqual({ instance: f.instance, netns: true, hostIf: true, table: true, ramDir: true, cgroup: false })
    const r = await reclaimInstance(f.instance)
    expect(r).toEqual({ instance: f.instance, removed: [`link ${hostIfOf(f.instance)} and its routes`, `netns ${netnsOf(f.instance)}`, `nft table ip ${hostTableName(f.instance)}`, `directory /dev/shm/${netnsOf(f.instance)}`], left: [] })
    expect(present(f)).toEqual([])
    expect((await findLeftovers()).find((l) => l.instance === f.instance)).toBeUndefined()
  })

  it('keeps an instance whose manager holds the mark, and reclaims it once that process is killed', async () => {
    const f = leaveBehind(2)
    const manager = await markHolder(f.instance)
    expect(await reclaimInstance(f.instance)).toEqual({ instance: f.instance, kept: `its mark is held by process ${manager.pid} (uid 0)` })
    expect(present(f)).toEqual(EVERYTHING)
    // kill -9: no shutdown code runs; the kernel frees the mark with the process.
    manager.kill('SIGKILL')
    await exited(manager)
    expect(await reclaimInstance(f.instance)).toMatchObject({ removed: expect.any(Array) })
    expect(present(f)).toEqual([])
  })

  it('keeps an instance with a QEMU of its own still running', async () => {
    const f = leaveBehind(3)
    // Stands in for QEMU: only the -name marker in the command line counts.
    const qemu = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '--', '-name', `rds:${f.instance}:vm-1`], { stdio: 'ignore' })
    children.push(qemu)
    await new Promise((resolve) => qemu.once('spawn', resolve))
    expect(await reclaimInstance(f.instance)).toEqual({ instance: f.instance, kept: `QEMU process ${qemu.pid} runs with its marker` })
    expect(present(f)).toEqual(EVERYTHING)
    qemu.kill('SIGKILL')
    await exited(qemu)
    expect(await reclaimInstance(f.instance)).toMatchObject({ removed: expect.any(Array) })
    expect(present(f)).toEqual([])
  })

  it.skipIf(!detectCgroupLayout())('keeps an instance while a task is in one of its VMMs\' cgroups (a VMM being launched, or still exiting)', async () => {
    const f = leaveBehind(5)
    const cgroups = new VmmCgroups(detectCgroupLayout()!, f.instance)
    const procs = cgroups.prepare('launching', vmmLimits({ cpu: 1, memMb: 64 }, 'tcg'))
    // As the driver's launch chain does: join the cgroup, then exec; no -name marker anywhere.
    const launch = spawn('/bin/sh', ['-c', 'for f; do echo $$ > "$f"; done; exec sleep 600', 'join', ...procs], { stdio: 'ignore' })
    children.push(launch)
    await vi.waitFor(() => expect(cgroups.tasks()).toEqual([launch.pid]))
    expect(await reclaimInstance(f.instance)).toEqual({ instance: f.instance, kept: `process ${launch.pid} is in the cgroup of one of its VMMs` })
    expect(present(f)).toEqual(EVERYTHING)
    launch.kill('SIGKILL')
    await exited(launch)
    await vi.waitFor(() => expect(cgroups.tasks()).toEqual([]))
    expect(await reclaimInstance(f.instance)).toMatchObject({ removed: expect.arrayContaining([`cgroup rds-${f.instance}`]) })
    expect(present(f)).toEqual([])
    expect(VmmCgroups.instanceParents(detectCgroupLayout()!)).not.toContain(`rds-${f.instance}`)
  })

  it('keeps an instance whose link address has a DNS forwarder (a manager from before the mark)', async () => {
    const f = leaveBehind(4)
    const dns = dgram.createSocket('udp4')
    await new Promise<void>((resolve) => dns.bind(53, f.hostLink, resolve))
    try {
      expect(await reclaimInstance(f.instance)).toEqual({ instance: f.instance, kept: `a process serves DNS on its link address ${f.hostLink}` })
      expect(present(f)).toEqual(EVERYTHING)
    } finally {
      await new Promise<void>((resolve) => dns.close(() => resolve()))
    }
    expect(await reclaimInstance(f.instance)).toMatchObject({ removed: expect.any(Array) })
    expect(present(f)).toEqual([])
  })

  it('leaves a RAM directory that is not its own (another user\'s, or open), and a link to one', async () => {
    const f = leaveBehind(6)
    const ram = `/dev/shm/${netnsOf(f.instance)}`
    fs.chownSync(ram, 1000, 1000)
    const r = await reclaimInstance(f.instance)
    expect(r).toMatchObject({ left: [`the guest RAM directory ${ram} (VM_RAM_DIR) is owned by uid 1000, not by the manager's uid 0`] })
    expect(present(f)).toEqual(['ram dir'])
    expect(fs.readdirSync(ram)).toEqual(['vm-1.ram'])

    const g = leaveBehind(7)
    const link = `/dev/shm/${netnsOf(g.instance)}`
    const target = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-shm-target-'))
    try {
      fs.writeFileSync(path.join(target, 'keep'), 'x')
      fs.rmSync(link, { recursive: true })
      fs.symlinkSync(target, link)
      expect(await reclaimInstance(g.instance)).toMatchObject({ left: [] })
      expect(fs.readlinkSync(link)).toBe(target)
      expect(fs.readdirSync(target)).toEqual(['keep'])
    } finally {
      fs.rmSync(target, { recursive: true, force: true })
    }
  })

  it('holds one mark per instance: a second holder is refused and told who holds it, until it is released', async () => {
    const instance = `fa${crypto.randomBytes(4).toString('hex')}`
    const first = await tryHoldMark(instance)
    expect(first).toHaveProperty('mark')
    expect(await tryHoldMark(instance)).toEqual({ heldBy: { pid: process.pid, uid: 0 } })
    if ('mark' in first) await first.mark.release()
    const again = await tryHoldMark(instance)
    expect(again).toHaveProperty('mark')
    if ('mark' in again) await again.mark.release()
  })

  it('refuses to start a second manager on the same STORAGE_ROOT', async () => {
    const root = path.join(os.tmpdir(), `rds-claim-${crypto.randomBytes(4).toString('hex')}`)
    const manager = await markHolder(instanceOf(root))
    const err = await holdOwnMark(root, silent as never).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(InstanceTakenError)
    expect((err as Error).message).toBe(`another manager (pid ${manager.pid}) is running with STORAGE_ROOT=${root} (instance ${instanceOf(root)}); stop it first`)
  })

  it('a mark squatted by another user does not stop a start (and still keeps reclamation away)', async () => {
    const root = path.join(os.tmpdir(), `rds-claim-${crypto.randomBytes(4).toString('hex')}`)
    const squatter = await markHolder(instanceOf(root), 1000)
    const warned: unknown[] = []
    const log = { ...silent, warn: (o: unknown) => void warned.push(o) }
    await holdOwnMark(root, log as never)
    expect(warned).toEqual([{ pid: squatter.pid, uid: 1000 }])
  })
})
