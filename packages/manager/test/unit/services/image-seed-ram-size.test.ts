// A seed saved with a guest RAM size other than the one a boot gives now (a TCG seed from before
// guests got 8 KiB more than their memMb, runtime/vmm/qemu/guest-ram.ts) still resumes — each
// clone with the size it was saved with — and is rebuilt at the next start.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { FakeManager } from '../../harness/fake-manager.ts'

let m: FakeManager
const template = { cpu: 1, memMb: 256, allowIps: [] }
const MIB = 1024 * 1024

beforeAll(async () => {
  m = await FakeManager.start({ env: { ENABLE_IMAGE_SEED: 'true' } })
})
afterAll(() => m?.close())

const readySeed = () =>
  m.waitFor('a ready seed', async () => {
    const img = (await m.api('GET', '/v1/images')).body.find((i: { id: string }) => i.id === m.imageId)
    return img?.seedStatus === 'ready' && (img.seedSnapshotId as string)
  })

it('clones get the seed RAM size, and a seed of another size than a boot gives is rebuilt at start', async () => {
  const old = await readySeed()
  m.vmm.ramPadBytes = 8192
  // Until it is rebuilt, the old seed resumes with the size it was saved with, not the boot size.
  const before = await m.api('POST', '/v1/vms', template)
  expect(before.body).toMatchObject({ provisionMode: 'snapshot' })
  expect(m.vmm.vm(before.body.id)!.ramBytes).toBe(256 * MIB)
  expect((await m.api('DELETE', `/v1/vms/${before.body.id}`)).status).toBe(204)

  await m.restart()
  const rebuilt = await m.waitFor('the seed rebuilt', async () => {
    const id = await readySeed()
    return id !== old && id
  })
  const after = await m.api('POST', '/v1/vms', template)
  expect(after.body).toMatchObject({ provisionMode: 'snapshot' })
  expect(m.vmm.vm(after.body.id)!.ramBytes).toBe(256 * MIB + 8192)
  // Its snapshot (and so any snapshot of it) records the size it runs with.
  const snap = await m.api('POST', `/v1/vms/${after.body.id}/snapshots`)
  expect(snap.status).toBe(201)
  const clone = await m.api('POST', '/v1/vms', { ...template, snapshotId: snap.body.id })
  expect(m.vmm.vm(clone.body.id)!.ramBytes).toBe(256 * MIB + 8192)
  expect(rebuilt).not.toBe(old)
  // The old seed's snapshot went with its replacement.
  expect((await m.api('GET', `/v1/snapshots/${old}`)).status).toBe(404)
})
