// The warm pool on the real services and the fake VMM (image seeds off): it fills to its
// target at start, a create of the pool's shape is handed a warm VM, and the pool refills,
// also when a warm VM dies.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { FakeManager } from '../../harness/fake-manager.ts'

let m: FakeManager

beforeAll(async () => {
  m = await FakeManager.start({ env: { ENABLE_WARM_POOL: 'true', WARM_POOL_TARGET: '1' } })
})
afterAll(() => m?.close())

const poolReady = () => m.waitFor('one warm VM ready', async () => {
  const r = await m.api('GET', '/v1/warm-pool')
  return r.body.ready === 1 && !r.body.refilling && r.body
})

it('fills to its target at start', async () => {
  expect(await poolReady()).toEqual({ enabled: true, target: 1, ready: 1, starting: 0, refilling: false })
  expect(m.vmm.running()).toHaveLength(1)
})

it('a create of the pool shape gets the warm VM (provisionMode pool) with its own policy; the pool refills', async () => {
  const [warm] = m.vmm.running()
  const r = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: ['198.51.100.7/32'] })
  expect(r.status).toBe(201)
  expect(r.body).toMatchObject({ id: warm, state: 'RUNNING', provisionMode: 'pool', allowIps: ['198.51.100.7/32'] })
  expect(m.vmm.vm(warm!)!.origin).toBe('boot')
  await poolReady()
  const refill = m.vmm.running().filter((id) => id !== warm)
  expect(refill).toHaveLength(1)
  // The new warm VM is the manager's own: not among the caller's VMs.
  expect((await m.api('GET', '/v1/vms')).body.map((v: { id: string }) => v.id)).toEqual([warm])
})

it('a create of another shape boots cold and leaves the pool alone', async () => {
  const r = await m.api('POST', '/v1/vms', { cpu: 2, memMb: 256, allowIps: [] })
  expect(r.body).toMatchObject({ state: 'RUNNING', provisionMode: 'boot' })
  expect((await m.api('GET', '/v1/warm-pool')).body).toMatchObject({ ready: 1, starting: 0 })
})

it('a warm VM whose VMM dies is replaced', async () => {
  const users = new Set((await m.api('GET', '/v1/vms')).body.map((v: { id: string }) => v.id))
  const [warm] = m.vmm.running().filter((id) => !users.has(id))
  await m.vmm.crash(warm!)
  await m.waitFor('the crashed warm VM replaced', async () => {
    const pool = m.vmm.running().filter((id) => !users.has(id))
    const status = (await m.api('GET', '/v1/warm-pool')).body
    return status.ready === 1 && status.starting === 0 && pool.length === 1 && pool[0] !== warm
  }, 2000)
})
