// Issue 13, finding 3: the VMM is confined, checked on real QEMU processes of a real manager. Each
// runs in a cgroup of its own with limits from the VM's shape, under QEMU's seccomp filter
// (`-sandbox`, which also forbids the exec: migration), as a uid/gid of its own VM with no
// capabilities, and in a mount namespace whose root holds only its own files; a snapshot and
// its clone still work under the confinement; nothing of it is left once the VMs are deleted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { ManagerProcess } from '../harness/manager-process.ts'
import { instanceOf } from '../../src/runtime/reclaim/instance-mark.ts'
import { detectCgroupLayout, VmmCgroups, vmmLimits } from '../../src/runtime/vmm/confinement/cgroups.ts'
import { vmmUserOf } from '../../src/runtime/vmm/confinement/vmm-user.ts'
import { tapName } from '../../src/runtime/network/host-network.ts'

/** The manager's default VMM_UID_BASE (config.ts). */
const UID_BASE = 1_000_000_000

let mgr: ManagerProcess
let instance: string
const vms: string[] = []
const layout = detectCgroupLayout()!

/** The live QEMU process of a VM, found by its -name marker. */
function qemuPid(vmId: string): number {
  const marker = `rds:${instance}:${vmId}`
  for (const d of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const args = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0')
      if (args[args.indexOf('-name') + 1] === marker) return Number(d)
    } catch {
      // exited meanwhile
    }
  }
  throw new Error(`no QEMU process for ${vmId}`)
}

/** Each hierarchy's cgroup path of a process: `memory` → `/rds-…/vm-…` (v2: the key is ''). */
function cgroupsOf(pid: number): Map<string, string> {
  const lines = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')
  return new Map(lines.map((l) => l.split(':')).map(([, ctrl, p]) => [ctrl!, p!]))
}

/** A line of /proc/<pid>/status as its whitespace-separated fields. */
function status(pid: number, key: string): string[] {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${key}:`))
  return line ? line.slice(key.length + 1).trim().split(/\s+/).filter(Boolean) : []
}

/** Opens `file` for reading as uid/gid (no supplementary groups), as the VMM would: 'ok' or the error code. */
function openAs(user: { uid: number; gid: number }, file: string): string {
  const r = spawnSync('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', 'node', '-e', `try { require('fs').closeSync(require('fs').openSync(${JSON.stringify(file)}, 'r')); console.log('ok') } catch (e) { console.log(e.code) }`], { encoding: 'utf8' })
  return r.stdout.trim() || r.stderr.trim()
}

async function userOf(vmId: string) {
  const vm = await mgr.request('GET', `/v1/vms/${vmId}`)
  return vmmUserOf(UID_BASE, vm.body.guestIp)
}

async function createVm(body: Record<string, unknown>): Promise<string> {
  const r = await mgr.request('POST', '/v1/vms', { allowIps: [], ...body })
  if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}\n${mgr.output}`)
  vms.push(r.body.id)
  return r.body.id
}

beforeAll(async () => {
  mgr = new ManagerProcess()
  await mgr.start()
  instance = instanceOf(mgr.storageRoot)
})

afterAll(async () => {
  for (const id of vms.reverse()) await mgr.request('DELETE', `/v1/vms/${id}`)
  await mgr?.cleanup()
})

describe('VMM confinement', () => {
  let vmId: string
  let cloneId: string
  it('runs each VMM in its own cgroup with limits from the VM shape', async () => {
    vmId = await createVm({ cpu: 2, memMb: 384 })
    const pid = qemuPid(vmId)
    const expected = `/rds-${instance}/vm-${vmId}`
    const cgroups = cgroupsOf(pid)
    if (layout.kind === 'v2') expect(cgroups.get('')).toBe(expected)
    else for (const c of ['memory', 'cpu', 'pids']) expect([...cgroups].find(([k]) => k.split(',').includes(c))?.[1]).toBe(expected)
    // The accelerator is the host's (KVM or TCG): either overhead, nothing else.
    expect([vmmLimits({ cpu: 2, memMb: 384 }, 'tcg'), vmmLimits({ cpu: 2, memMb: 384 }, 'kvm')]).toContainEqual(new VmmCgroups(layout, instance).read(vmId))
    expect((await mgr.exec(vmId, 'echo confined')).stdout).toBe('confined\n')
  })

  it('runs each VMM under a seccomp filter', () => {
    expect(fs.readFileSync(`/proc/${qemuPid(vmId)}/status`, 'utf8')).toMatch(/^Seccomp:\s+2$/m)
  })

  it('runs each VMM as its VM\'s own uid and gid, with no capabilities', async () => {
    const pid = qemuPid(vmId)
    const user = await userOf(vmId)
    expect(user.uid).toBeGreaterThan(UID_BASE)
    // Real, effective, saved and filesystem ids.
    expect(status(pid, 'Uid')).toEqual(Array(4).fill(String(user.uid)))
    expect(status(pid, 'Gid')).toEqual(Array(4).fill(String(user.gid)))
    expect(status(pid, 'Groups')).toEqual([])
    for (const caps of ['CapEff', 'CapPrm', 'CapInh', 'CapBnd', 'CapAmb']) expect([caps, BigInt(`0x${status(pid, caps)[0]}`)]).toEqual([caps, 0n])
    expect(status(pid, 'NoNewPrivs')).toEqual(['1'])
    // Its run directory (sockets, pidfile) is its own, and the manager still reaches the agent through it.
    const runDir = path.join(mgr.storageRoot, 'vms', vmId, 'run')
    const st = fs.statSync(runDir)
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([user.uid, user.gid, 0o700])
    expect(fs.readdirSync(runDir)).toEqual(expect.arrayContaining(['control.sock', 'bridge.sock', 'console.sock', 'qmp.sock', 'vmm.pid']))
    expect((await mgr.exec(vmId, 'echo still-answers')).stdout).toBe('still-answers\n')
    // Its TAP is its uid's: the unprivileged QEMU could attach to it, and to no other VM's.
    const owner = execFileSync('ip', ['netns', 'exec', mgr.netns, 'cat', `/sys/class/net/${tapName(vmId)}/owner`], { encoding: 'utf8' }).trim()
    expect(owner).toBe(String(user.uid))
  })

  it('gives each VMM a root that holds only its own files', () => {
    const root = `/proc/${qemuPid(vmId)}/root`
    expect(fs.existsSync(`${root}/vm/overlay`)).toBe(true)
    expect(fs.existsSync(`${root}/run/qmp.sock`)).toBe(true)
    for (const hidden of [path.join(mgr.storageRoot, 'manager.db'), mgr.storageRoot, '/etc/passwd', '/root', '/proc/1', '/dev/shm', '/dev/sda']) expect([hidden, fs.existsSync(`${root}${hidden}`)]).toEqual([hidden, false])
    expect(fs.readdirSync(`${root}/dev`).sort()).toEqual(['net', 'null', 'random', 'urandom', 'zero'])
  })

  it('snapshots a confined VM and clones it into a confined VMM', async () => {
    await mgr.exec(vmId, 'echo kept > /dev/shm/marker')
    const snap = await mgr.request('POST', `/v1/vms/${vmId}/snapshots`)
    expect(snap.status).toBe(201)
    // The stream the state cap bounds (RAM + 64 MiB): RAM is in the shared file, so device state only.
    console.log(`snapshot of a 384 MiB VM: state stream ${snap.body.sizes.stateBytes} B on disk, memory file ${snap.body.sizes.memoryBytes} B`)
    const clone = await createVm({ cpu: 2, memMb: 384, snapshotId: snap.body.id })
    expect((await mgr.exec(clone, 'cat /dev/shm/marker')).stdout).toBe('kept\n')
    expect([...cgroupsOf(qemuPid(clone)).values()]).toContain(`/rds-${instance}/vm-${clone}`)
    cloneId = clone
  })

  it('keeps one VM\'s uid out of another VM\'s files and the manager\'s', async () => {
    const user = await userOf(vmId)
    const cloneUser = await userOf(cloneId)
    expect(cloneUser.uid).not.toBe(user.uid)
    expect(status(qemuPid(cloneId), 'Uid')).toEqual(Array(4).fill(String(cloneUser.uid)))
    const own = path.join(mgr.storageRoot, 'vms', vmId, 'overlay.ext4')
    const others = path.join(mgr.storageRoot, 'vms', cloneId, 'overlay.ext4')
    // The probe can open what the VMM may (so a refusal below is the uid's, not the probe's).
    expect(openAs(user, `/proc/${qemuPid(vmId)}/root/vm/overlay`)).toBe('ok')
    const targets = [others, path.join(mgr.storageRoot, 'manager.db'), path.join(mgr.storageRoot, 'vms', cloneId, 'run', 'control.sock')]
    // As deployed: STORAGE_ROOT and the VM directories are the manager's alone.
    for (const file of [...targets, own]) expect([file, openAs(user, file)]).toEqual([file, 'EACCES'])
    // Even with every directory on the way open, the files themselves are not this uid's (an
    // operator's STORAGE_ROOT may be 0755): the other VM's disk and sockets, the database.
    const dirs = [mgr.storageRoot, path.join(mgr.storageRoot, 'vms'), path.join(mgr.storageRoot, 'vms', cloneId), path.join(mgr.storageRoot, 'vms', vmId)]
    const modes = dirs.map((d) => fs.statSync(d).mode & 0o777)
    try {
      for (const d of dirs) fs.chmodSync(d, 0o711)
      expect(openAs(user, own)).toBe('ok')
      for (const file of targets) expect([file, openAs(user, file)]).toEqual([file, 'EACCES'])
    } finally {
      dirs.forEach((d, i) => fs.chmodSync(d, modes[i]!))
    }
  })

  it('removes the cgroups with the VMs', async () => {
    for (const id of vms.splice(0).reverse()) expect((await mgr.request('DELETE', `/v1/vms/${id}`)).status).toBeLessThan(300)
    const left = VmmCgroups.instanceParents(layout).filter((n) => n === `rds-${instance}`)
    expect(left).toEqual([])
  })
})
