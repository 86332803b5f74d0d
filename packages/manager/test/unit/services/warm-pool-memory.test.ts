// The warm pool gives way to users' VMs on memory (it is on by default): it fills only while the
// guest memory budget keeps room for a user's VM of its shape beside the warm one, and a user's
// create refused for memory takes a warm VM's room. Real services, fake VMM, image seeds off.
import { afterEach, expect, it } from 'vitest'
import { FakeManager } from '../../harness/fake-manager.ts'

let m: FakeManager | undefined
afterEach(async () => {
  await m?.close()
  m = undefined
})

const start = (budgetMb: number) => FakeManager.start({ env: { ENABLE_WARM_POOL: 'true', WARM_POOL_TARGET: '1', VM_MEMORY_BUDGET_MB: String(budgetMb) } })
const settled = (mgr: FakeManager) => mgr.waitFor('the pool to settle', async () => {
  const r = await mgr.api('GET', '/v1/warm-pool')
  return !r.body.refilling && r.body
})

it('is on by default with one warm VM of the template shape', async () => {
  m = await FakeManager.start({ env: { ENABLE_WARM_POOL: '' } })
  expect(await m.waitFor('the pool', async () => {
    const r = await m!.api('GET', '/v1/warm-pool')
    return r.body.ready === 1 && r.body
  })).toMatchObject({ enabled: true, target: 1, ready: 1 })
})

it('does not fill when the budget has no room for a user VM of its shape beside the warm one', async () => {
  m = await start(256 + 128)
  expect(await settled(m)).toMatchObject({ enabled: true, ready: 0, starting: 0 })
  expect(m.vmm.running()).toHaveLength(0)
  const r = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
  expect(r.status).toBe(201)
  expect(r.body.provisionMode).toBe('boot')
  // The user's VM holds the budget now: still no warm VM.
  expect(await settled(m)).toMatchObject({ ready: 0, starting: 0 })
  expect(m.vmm.running()).toEqual([r.body.id])
})

it("counts each VMM's own memory beside its guest: no warm VM where two guests fit but not two VMs", async () => {
  // 2 × 256 MiB guests fit in 612 MiB; with 64 MiB per VMM two VMs do not.
  m = await FakeManager.start({ env: { ENABLE_WARM_POOL: 'true', WARM_POOL_TARGET: '1', VM_MEMORY_BUDGET_MB: '612' }, vmmOverheadMb: 64 })
  expect(await settled(m)).toMatchObject({ enabled: true, ready: 0, starting: 0 })
  expect(m.vmm.running()).toHaveLength(0)
})

it('a user create refused for memory gets the warm VM\'s room; the pool waits for memory', async () => {
  m = await start(512)
  await m.waitFor('the pool', async () => (await m!.api('GET', '/v1/warm-pool')).body.ready === 1)
  const [warm] = m.vmm.running()
  // 512 MiB does not fit beside the warm VM's 256 of a 512 budget: the warm VM goes, the create succeeds.
  const r = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [] })
  expect(r.status).toBe(201)
  expect(r.body.provisionMode).toBe('boot')
  expect(m.vmm.running()).toEqual([r.body.id])
  expect(m.vmm.running()).not.toContain(warm)
  expect(await settled(m)).toMatchObject({ ready: 0, starting: 0 })
  // Beyond the budget with no warm VM left, the refusal is the usual one.
  const refused = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
  expect(refused.status).toBe(503)
  expect(refused.body.code).toBe('host_memory_exhausted')
})
