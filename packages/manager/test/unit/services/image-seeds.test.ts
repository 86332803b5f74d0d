// Image seeds on the real services and the fake VMM: the template seed is built at start
// (a cold boot, the warm-up on its agent, a snapshot through the VMM handle), a create of the
// template shape resumes from it, and a seed that does not restore costs a cold boot, never
// the create.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { FakeManager } from '../../harness/fake-manager.ts'

let m: FakeManager
const template = { cpu: 1, memMb: 256, allowIps: [] }

beforeAll(async () => {
  m = await FakeManager.start({ env: { ENABLE_IMAGE_SEED: 'true' } })
})
afterAll(() => m?.close())

const image = async () => (await m.api('GET', '/v1/images')).body.find((i: { id: string }) => i.id === m.imageId)

it('the template seed is built at start: booted, warmed up, snapshotted, and its VM removed', async () => {
  const img = await m.waitFor('the template seed', async () => {
    const i = await image()
    return i.seedStatus !== 'pending' && i.seedStatus !== null && i
  })
  expect(img).toMatchObject({ seedStatus: 'ready', seedError: null })
  expect(img.seedSnapshotId).toMatch(/^snap-/)
  // The seed is recorded before its VM goes.
  await m.waitFor('the seed VM removed', async () => m.vmm.running().length === 0 && m.vmDirs().length === 0)
  const [seedVm, ...others] = m.vmm.vms()
  expect(others).toEqual([])
  expect(seedVm).toMatchObject({ origin: 'boot', exit: { code: 0, signal: null } })
  // Warm-up (exec, node, deno), then the guest sync before the copy point.
  expect(seedVm!.requests.filter((r) => !r.startsWith('GET'))).toEqual(['POST /init', 'POST /exec', 'POST /run', 'POST /run', 'POST /exec'])
  expect((await m.api('GET', '/v1/vms')).body).toEqual([])
  expect([m.taps(), m.ramFiles()]).toEqual([[], []])
})

it('a create of the template shape resumes from the seed (provisionMode snapshot) and gets its own network', async () => {
  const { seedSnapshotId } = await image()
  const r = await m.api('POST', '/v1/vms', template)
  expect(r.status).toBe(201)
  expect(r.body).toMatchObject({ state: 'RUNNING', provisionMode: 'snapshot' })
  const clone = m.vmm.vm(r.body.id)!
  expect(clone.origin).toBe('restore')
  // It maps the seed's memory file privately, and was told its own address.
  expect(clone.spec.memory).toEqual({ file: `${m.root}/snapshots/${seedSnapshotId}/memory.raw`, shared: false })
  expect(clone.inits[0]!.network!.address).toBe(r.body.guestIp)
  // The seed snapshot cannot go while a clone maps it.
  expect((await m.api('DELETE', `/v1/snapshots/${seedSnapshotId}`)).body.code).toBe('snapshot_in_use')
})

it('a seed that fails to restore falls back to a cold boot: the create succeeds, the seed is marked failed', async () => {
  m.vmm.failNextRestore('state file from another QEMU')
  const r = await m.api('POST', '/v1/vms', template)
  expect(r.status).toBe(201)
  expect(r.body).toMatchObject({ state: 'RUNNING', provisionMode: 'boot' })
  expect(m.vmm.vm(r.body.id)!.origin).toBe('boot')
  const img = await image()
  expect(img).toMatchObject({ seedStatus: 'failed', seedSnapshotId: null })
  expect(img.seedError).toContain('state file from another QEMU')
  expect((await m.api('GET', '/v1/vms')).body).toHaveLength(2)
  expect(m.vmDirs()).toHaveLength(2)
})
