// Issue 13, finding 3: the VMM is confined, checked on real QEMU processes of a real manager. Each
// runs in a cgroup of its own with limits from the VM's shape, under QEMU's seccomp filter
// (`-sandbox`, which also forbids the exec: migration); a snapshot and its clone
// still work under the confinement; nothing of it is left once the VMs are deleted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fs from 'node:fs'
import { ManagerProcess } from '../harness/manager-process.ts'
import { instanceOf } from '../../src/runtime/reclaim/instance-mark.ts'
import { detectCgroupLayout, VmmCgroups, vmmLimits } from '../../src/runtime/vmm/confinement/cgroups.ts'

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

  it('snapshots a confined VM and clones it into a confined VMM', async () => {
    await mgr.exec(vmId, 'echo kept > /dev/shm/marker')
    const snap = await mgr.request('POST', `/v1/vms/${vmId}/snapshots`)
    expect(snap.status).toBe(201)
    const clone = await createVm({ cpu: 2, memMb: 384, snapshotId: snap.body.id })
    expect((await mgr.exec(clone, 'cat /dev/shm/marker')).stdout).toBe('kept\n')
    expect([...cgroupsOf(qemuPid(clone)).values()]).toContain(`/rds-${instance}/vm-${clone}`)
  })

  it('removes the cgroups with the VMs', async () => {
    for (const id of vms.splice(0).reverse()) expect((await mgr.request('DELETE', `/v1/vms/${id}`)).status).toBeLessThan(300)
    const left = VmmCgroups.instanceParents(layout).filter((n) => n === `rds-${instance}`)
    expect(left).toEqual([])
  })
})
