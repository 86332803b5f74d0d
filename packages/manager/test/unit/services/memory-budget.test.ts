// Host RAM admission of guest memory on the real services and the fake VMM: booted VMs and
// clones resumed from a snapshot (whose written pages are anonymous memory no RAM file shows)
// count alike against VM_MEMORY_BUDGET_MB; past it a create is 503 host_memory_exhausted and
// leaves nothing behind; deleting a VM gives its memory back; a manager restart counts the
// VMs it re-attaches.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { defaultMemoryBudgetMb } from '../../../src/runtime/supervisor/memory-budget.ts'
import { FakeManager } from '../../harness/fake-manager.ts'

let m: FakeManager
const shape = { cpu: 1, memMb: 256, allowIps: [] }

beforeAll(async () => {
  // Room for two 256 MiB guests, not three.
  m = await FakeManager.start({ env: { VM_MEMORY_BUDGET_MB: '700' } })
})
afterAll(() => m?.close())

const create = (body: Record<string, unknown> = {}) => m.api('POST', '/v1/vms', { ...shape, ...body })

it('the default budget is MemTotal less 1/8 of it, at least 1 GiB', () => {
  expect(defaultMemoryBudgetMb('MemTotal:       25165824 kB\n')).toBe(24576 - 3072)
  expect(defaultMemoryBudgetMb('MemTotal:        4194304 kB\n')).toBe(4096 - 1024)
  expect(() => defaultMemoryBudgetMb('nothing here')).toThrow(/VM_MEMORY_BUDGET_MB/)
})

it('a clone counts like a booted VM: the third guest is refused with 503 host_memory_exhausted, nothing left behind', async () => {
  const a = await create()
  expect(a.status).toBe(201)
  const snap = await m.api('POST', `/v1/vms/${a.body.id}/snapshots`)
  expect(snap.status).toBe(201)
  const clone = await create({ snapshotId: snap.body.id })
  expect(clone.status).toBe(201)
  expect(clone.body.provisionMode).toBe('snapshot')
  // The clone has no RAM file of its own: only the budget sees its memory.
  expect(m.ramFiles()).toEqual([`${a.body.id}.ram`])

  const vmsBefore = (await m.api('GET', '/v1/vms')).body.length
  for (const body of [{}, { snapshotId: snap.body.id }]) {
    const r = await create(body)
    expect(r.status, JSON.stringify(body)).toBe(503)
    expect(r.body).toMatchObject({ code: 'host_memory_exhausted', budgetMb: 700, usedMb: 512, memMb: 256 })
    expect(r.body.message).toBe("Not enough host memory for the guest: 256 MiB needed, 188 MiB left of VM_MEMORY_BUDGET_MB=700 (running VMs count with their memMb and their VMM's own memory, booted or resumed from a snapshot); stop or delete a VM, or raise VM_MEMORY_BUDGET_MB")
  }
  expect((await m.api('GET', '/v1/vms')).body.length).toBe(vmsBefore)
  expect(m.vmm.running().length).toBe(2)
  expect(m.ramFiles()).toEqual([`${a.body.id}.ram`])

  // A smaller guest still fits.
  const small = await create({ memMb: 128 })
  expect(small.status).toBe(201)
  expect((await m.api('DELETE', `/v1/vms/${small.body.id}`)).status).toBe(204)

  // Deleting the clone gives its memory back.
  expect((await m.api('DELETE', `/v1/vms/${clone.body.id}`)).status).toBe(204)
  const again = await create()
  expect(again.status).toBe(201)
  for (const id of [a.body.id, again.body.id]) expect((await m.api('DELETE', `/v1/vms/${id}`)).status).toBe(204)
  await m.api('DELETE', `/v1/snapshots/${snap.body.id}`)
})

it('a stopped VM holds nothing; a manager restart counts the running VMs it re-attaches', async () => {
  const a = await create()
  const b = await create()
  expect([a.status, b.status]).toEqual([201, 201])
  expect((await m.api('POST', `/v1/vms/${b.body.id}/stop`)).status).toBe(204)
  const c = await create()
  expect(c.status).toBe(201)
  await m.restart()
  expect(m.s.supervisor.memory()).toEqual({ usedMb: 512, budgetMb: 700, vmmOverheadMb: 0 })
  expect((await create()).body.code).toBe('host_memory_exhausted')
  // Starting the stopped VM is admitted the same way.
  const start = await m.api('POST', `/v1/vms/${b.body.id}/start`)
  expect(start.status).toBe(503)
  expect(start.body.code).toBe('host_memory_exhausted')
  // As with a full RAM directory, the refused start leaves the VM in ERROR with its disk; it starts once there is room.
  expect((await m.api('GET', `/v1/vms/${b.body.id}`)).body.state).toBe('ERROR')
  expect((await m.api('DELETE', `/v1/vms/${c.body.id}`)).status).toBe(204)
  expect((await m.api('POST', `/v1/vms/${b.body.id}/start`)).status).toBe(204)
  for (const id of [a.body.id, b.body.id]) await m.api('DELETE', `/v1/vms/${id}`)
  expect(m.s.supervisor.memory().usedMb).toBe(0)
})

it("each VM also holds its VMM's own memory: what fit for guests alone is refused, and the answer says why", async () => {
  const withVmm = await FakeManager.start({ env: { VM_MEMORY_BUDGET_MB: '800' }, vmmOverheadMb: 192 })
  try {
    // 2 × 256 MiB of guests fit in 800 MiB; with 192 MiB per VMM only one does.
    const a = await withVmm.api('POST', '/v1/vms', shape)
    expect(a.status).toBe(201)
    expect(withVmm.s.supervisor.memory()).toEqual({ usedMb: 448, budgetMb: 800, vmmOverheadMb: 192 })
    const b = await withVmm.api('POST', '/v1/vms', shape)
    expect(b.status).toBe(503)
    expect(b.body).toMatchObject({ code: 'host_memory_exhausted', budgetMb: 800, usedMb: 448, memMb: 256, overheadMb: 192 })
    expect(b.body.message).toBe("Not enough host memory for the guest: 256 MiB (+ 192 MiB for its VMM) needed, 352 MiB left of VM_MEMORY_BUDGET_MB=800 (running VMs count with their memMb and their VMM's own memory, booted or resumed from a snapshot); stop or delete a VM, or raise VM_MEMORY_BUDGET_MB")
    expect(withVmm.vmm.running()).toEqual([a.body.id])
    // A guest small enough for the rest still fits; deleting gives guest and VMM memory back.
    const small = await withVmm.api('POST', '/v1/vms', { ...shape, memMb: 128 })
    expect(small.status).toBe(201)
    for (const id of [a.body.id, small.body.id]) expect((await withVmm.api('DELETE', `/v1/vms/${id}`)).status).toBe(204)
    expect(withVmm.s.supervisor.memory().usedMb).toBe(0)
  } finally {
    await withVmm.close()
  }
})
