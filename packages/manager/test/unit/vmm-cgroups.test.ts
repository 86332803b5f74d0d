// The per-VMM cgroup: which hierarchy a host has, the limits a VM's shape gives, and the files
// written for each (a directory tree stands in for /sys/fs/cgroup; the kernel's side, joining
// and removal with tasks, is in test/security/vmm-confinement.test.ts).
import { afterEach, describe, expect, it } from 'vitest'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { detectCgroupLayout, QEMU_OVERHEAD_MIB, VmmCgroups, vmmLimits } from '../../src/runtime/vmm/confinement/cgroups.ts'

const roots: string[] = []
afterEach(() => {
  for (const r of roots.splice(0)) fs.rmSync(r, { recursive: true, force: true })
})

function fakeRoot(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-'))
  roots.push(root)
  for (const [f, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true })
    fs.writeFileSync(path.join(root, f), content)
  }
  return root
}

describe('vmm cgroups', () => {
  it('derives the limits from the shape and the accelerator', () => {
    expect(vmmLimits({ cpu: 2, memMb: 512 }, 'tcg')).toEqual({ memoryBytes: (512 + QEMU_OVERHEAD_MIB.tcg) * 1024 * 1024, pids: 82, cpuQuotaUs: 200_000, cpuPeriodUs: 100_000 })
    expect(vmmLimits({ cpu: 1, memMb: 256 }, 'kvm').memoryBytes).toBe((256 + QEMU_OVERHEAD_MIB.kvm) * 1024 * 1024)
  })

  it('finds a v2 tree only when it has the three controllers, and v1 trees otherwise', () => {
    expect(detectCgroupLayout(fakeRoot({ 'cgroup.controllers': 'cpuset cpu io memory pids' }))?.kind).toBe('v2')
    // A hybrid host: the v2 tree has no controllers, v1 has them.
    expect(detectCgroupLayout(fakeRoot({ 'cgroup.controllers': 'hugetlb', 'memory/cgroup.procs': '', 'cpu/cgroup.procs': '', 'pids/cgroup.procs': '' }))?.kind).toBe('v1')
    expect(detectCgroupLayout(fakeRoot({ 'memory/cgroup.procs': '' }))).toBeUndefined()
  })

  it('writes v2 limits and enables the controllers on the way down', () => {
    const root = fakeRoot({ 'cgroup.controllers': 'cpu memory pids', 'cgroup.subtree_control': 'memory' })
    const cg = new VmmCgroups({ kind: 'v2', root }, '0123456789')
    const limits = vmmLimits({ cpu: 1, memMb: 256 }, 'tcg')
    expect(cg.prepare('vm1', limits)).toEqual([path.join(root, 'rds-0123456789/vm-vm1/cgroup.procs')])
    expect(fs.readFileSync(path.join(root, 'cgroup.subtree_control'), 'utf8')).toBe('+cpu +pids')
    expect(fs.readFileSync(path.join(root, 'rds-0123456789/vm-vm1/cpu.max'), 'utf8')).toBe('100000 100000')
    expect(cg.read('vm1')).toEqual(limits)
  })

  it('writes v1 limits into each controller tree', () => {
    const root = fakeRoot({})
    const cg = new VmmCgroups({ kind: 'v1', root }, '0123456789')
    const limits = vmmLimits({ cpu: 2, memMb: 1024 }, 'kvm')
    expect(cg.prepare('vm2', limits)).toEqual(['memory', 'cpu', 'pids'].map((c) => path.join(root, c, 'rds-0123456789/vm-vm2/cgroup.procs')))
    expect(fs.readFileSync(path.join(root, 'cpu/rds-0123456789/vm-vm2/cpu.cfs_quota_us'), 'utf8')).toBe('200000')
    expect(cg.read('vm2')).toEqual(limits)
    expect(VmmCgroups.instanceParents({ kind: 'v1', root })).toEqual(['rds-0123456789'])
  })
})
