// A snapshot whose VMM sends more state than its cap (qemu/byte-cap.ts, unit-tested with a stand-in
// QMP in state-stream-cap.test.ts) fails cleanly through the real services and API: its own code,
// no snapshot kept (row or files), the VM still running. Real services, fake VMM.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { FakeManager } from '../../harness/fake-manager.ts'

let m: FakeManager

beforeAll(async () => {
  m = await FakeManager.start()
})
afterAll(() => m?.close())

it('answers 500 snapshot_state_too_large, keeps nothing of the snapshot and leaves the VM running', async () => {
  const created = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
  expect(created.status).toBe(201)
  const id = created.body.id
  m.vmm.overflowNextSnapshot(id)
  const r = await m.api('POST', `/v1/vms/${id}/snapshots`)
  expect(r.status).toBe(500)
  expect(r.body).toMatchObject({ code: 'snapshot_state_too_large', maxBytes: 1234 })
  expect(r.body.message).toContain('the VM goes on running')
  expect((await m.api('GET', '/v1/snapshots')).body).toEqual([])
  expect(fs.readdirSync(path.join(m.root, 'snapshots'))).toEqual([])
  expect((await m.api('GET', `/v1/vms/${id}`)).body.state).toBe('RUNNING')
  // The next snapshot, within its cap, works.
  expect((await m.api('POST', `/v1/vms/${id}/snapshots`)).status).toBe(201)
})
