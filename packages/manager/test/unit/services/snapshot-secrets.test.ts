// Snapshots of VMs with secretEnv, on the real services and the fake VMM. The snapshot's RAM
// holds the secret values (every exec/run's environment), so it is marked containsSecrets and a
// create from it needs secretEnv of the same names or acceptSnapshotSecrets; a VM created from
// it passes the marking on to its own snapshots. Image seeds never hold secrets.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { FakeManager } from '../../harness/fake-manager.ts'

let m: FakeManager
const shape = { cpu: 1, memMb: 256, allowIps: [] }

beforeAll(async () => {
  m = await FakeManager.start({ env: { VM_SECRET_KEY: 'snapshot-secrets-unit', ENABLE_IMAGE_SEED: 'true' } })
})
afterAll(() => m?.close())

async function vm(body: Record<string, unknown>): Promise<string> {
  const r = await m.api('POST', '/v1/vms', { ...shape, ...body })
  expect(r.status).toBe(201)
  return r.body.id
}

async function snapshot(vmId: string): Promise<any> {
  const r = await m.api('POST', `/v1/vms/${vmId}/snapshots`)
  expect(r.status).toBe(201)
  return r.body
}

it('a snapshot of a VM without secretEnv has containsSecrets false and clones freely', async () => {
  const snap = await snapshot(await vm({}))
  expect(snap.containsSecrets).toBe(false)
  expect((await m.api('POST', '/v1/vms', { ...shape, snapshotId: snap.id })).status).toBe(201)
})

it('a snapshot of a VM with secretEnv has containsSecrets true, in its create reply, GET and list', async () => {
  const snap = await snapshot(await vm({ secretEnv: ['TOKEN=one', 'OTHER=two'] }))
  expect(snap.containsSecrets).toBe(true)
  expect((await m.api('GET', `/v1/snapshots/${snap.id}`)).body.containsSecrets).toBe(true)
  expect((await m.api('GET', '/v1/snapshots')).body.find((s: { id: string }) => s.id === snap.id).containsSecrets).toBe(true)
  // The names are not part of the snapshot's API shape.
  expect(JSON.stringify(snap)).not.toMatch(/TOKEN|OTHER/)
})

it('a create from it without secretEnv, or with other names, is 400 snapshot_contains_secrets and creates nothing', async () => {
  const snap = await snapshot(await vm({ secretEnv: ['TOKEN=one', 'OTHER=two'] }))
  const before = (await m.api('GET', '/v1/vms')).body.length
  const running = m.vmm.running().length
  for (const secretEnv of [undefined, ['TOKEN=x'], ['TOKEN=x', 'OTHER=y', 'THIRD=z'], ['TOKEN=x', 'ELSE=y']]) {
    const r = await m.api('POST', '/v1/vms', { ...shape, snapshotId: snap.id, ...(secretEnv ? { secretEnv } : {}) })
    expect(r.status, JSON.stringify(secretEnv)).toBe(400)
    expect(r.body).toMatchObject({ code: 'snapshot_contains_secrets', secretCount: 2 })
    expect(r.body.message).toContain('acceptSnapshotSecrets')
    // Neither the names nor the values are repeated to the caller.
    expect(r.body.message).not.toMatch(/TOKEN|OTHER|one|two/)
  }
  // The original's field name is held to the same rule.
  expect((await m.api('POST', '/v1/vms', { ...shape, userOverlaySnapshotId: snap.id })).body.code).toBe('snapshot_contains_secrets')
  expect((await m.api('GET', '/v1/vms')).body.length).toBe(before)
  expect(m.vmm.running().length).toBe(running)
})

it('a create with the same names (other values, any order) or with acceptSnapshotSecrets resumes from it', async () => {
  const snap = await snapshot(await vm({ secretEnv: ['TOKEN=one', 'OTHER=two'] }))
  const same = await m.api('POST', '/v1/vms', { ...shape, snapshotId: snap.id, secretEnv: ['OTHER=new', 'TOKEN=new'] })
  expect(same.status).toBe(201)
  expect(same.body).toMatchObject({ provisionMode: 'snapshot', sourceSnapshotId: snap.id })
  const accepted = await m.api('POST', '/v1/vms', { ...shape, snapshotId: snap.id, acceptSnapshotSecrets: true })
  expect(accepted.status).toBe(201)
  // A cold boot from its disk (another shape) follows the same rule.
  expect((await m.api('POST', '/v1/vms', { ...shape, memMb: 384, snapshotId: snap.id })).body.code).toBe('snapshot_contains_secrets')
})

it('a VM created from it without secretEnv still holds the source\'s secrets: its own snapshots contain them', async () => {
  const snap = await snapshot(await vm({ secretEnv: ['TOKEN=one'] }))
  const clone = await vm({ snapshotId: snap.id, acceptSnapshotSecrets: true })
  const second = await snapshot(clone)
  expect(second.containsSecrets).toBe(true)
  // Same names as the first VM's: allowed without accepting.
  expect((await m.api('POST', '/v1/vms', { ...shape, snapshotId: second.id })).body.code).toBe('snapshot_contains_secrets')
  expect((await m.api('POST', '/v1/vms', { ...shape, snapshotId: second.id, secretEnv: ['TOKEN=three'] })).status).toBe(201)
})

it('a snapshot survives a manager restart with its marking', async () => {
  const snap = await snapshot(await vm({ secretEnv: ['TOKEN=one'] }))
  await m.restart()
  expect((await m.api('GET', `/v1/snapshots/${snap.id}`)).body.containsSecrets).toBe(true)
  expect((await m.api('POST', '/v1/vms', { ...shape, snapshotId: snap.id })).body.code).toBe('snapshot_contains_secrets')
})

it('image seeds never contain secrets', async () => {
  await m.waitFor('an image seed', async () => (await m.api('GET', '/v1/snapshots?scope=internal')).body.length > 0)
  const seeds = (await m.api('GET', '/v1/snapshots?scope=internal')).body
  expect(seeds.map((s: { containsSecrets: boolean }) => s.containsSecrets)).toEqual(seeds.map(() => false))
})
