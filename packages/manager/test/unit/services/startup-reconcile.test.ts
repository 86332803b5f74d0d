// A manager restart on the same STORAGE_ROOT with the fake VMs still running: the startup
// reconciliation re-attaches what still runs, stops what is gone and removes what was never
// finished, and the re-attached VMs are watched and usable as before.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { tapName } from '../../../src/runtime/network/host-network.ts'
import { createVmsRepo } from '../../../src/store/vms-repo.ts'
import { openDatabase } from '../../../src/store/db.ts'
import { FakeManager } from '../../harness/fake-manager.ts'

let m: FakeManager

beforeAll(async () => {
  m = await FakeManager.start()
})
afterAll(() => m?.close())

async function runningVm(): Promise<string> {
  const r = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
  expect(r.body.state).toBe('RUNNING')
  return r.body.id
}

/** A create the previous manager never finished: the row as the provisioner inserts it, and its directory. */
async function halfCreatedVm(): Promise<string> {
  const id = 'half-created-vm'
  await createVmsRepo(m.s.db, m.s.dialect).insertWithinQuota({
    id, state: 'CREATED', cpu: 1, memMb: 256, imageId: m.imageId, guestIp: null, allowIps: [], allowDomains: [], outboundInternet: false,
    provisionMode: null, createdAt: new Date().toISOString(), startedAt: null, bootMs: null, lastError: null, vmmPid: null, vmmStartTime: null,
    purpose: 'user', secretEnv: null, sourceSnapshotId: null, memorySnapshotId: null, inheritedSecretNames: [], createdBy: null, expiresAt: null, ttlSeconds: null, onExpire: 'delete', labels: {},
  }, { maxVms: 100 })
  fs.mkdirSync(path.join(m.root, 'vms', id))
  fs.writeFileSync(path.join(m.root, 'vms', id, 'overlay.ext4'), '')
  return id
}

it('re-attaches the running and the paused VM, stops the one whose VMM died meanwhile, removes the half-created one', async () => {
  const kept = await runningVm()
  const paused = await runningVm()
  await m.api('POST', `/v1/vms/${paused}/pause`)
  const lost = await runningVm()
  const half = await halfCreatedVm()
  const before = (await m.api('GET', `/v1/vms/${kept}`)).body

  const summary = await m.restart(() => m.vmm.crash(lost))
  expect(summary).toMatchObject({ stopped: [lost], removed: [half], reaped: [], removedTaps: [] })
  expect(summary.reattached.toSorted()).toEqual([kept, paused].toSorted())

  // The re-attached VM is the same VMM, with a new agent session (a fresh init).
  expect((await m.api('GET', `/v1/vms/${kept}`)).body).toMatchObject({ state: 'RUNNING', guestIp: before.guestIp, startedAt: before.startedAt })
  expect(m.vmm.vm(kept)!.inits).toHaveLength(2)
  expect((await m.api('POST', `/v1/vms/${kept}/exec`, { cmd: 'true' })).body).toMatchObject({ exitCode: 0 })
  expect((await m.api('GET', `/v1/vms/${paused}`)).body.state).toBe('PAUSED')
  expect((await m.api('GET', `/v1/vms/${lost}`)).body).toMatchObject({ state: 'STOPPED', lastError: 'VM was not running after a manager restart' })
  expect((await m.api('GET', `/v1/vms/${half}`)).status).toBe(404)
  expect(m.vmDirs().toSorted()).toEqual([kept, paused, lost].toSorted())
  // TAPs belong to VMs that exist, running or not.
  expect(m.taps().toSorted()).toEqual([kept, paused, lost].map(tapName).toSorted())
  expect(m.ramFiles().toSorted()).toEqual([`${kept}.ram`, `${paused}.ram`].toSorted())

  // Watched as before: verbs work, and a crash is seen.
  expect((await m.api('POST', `/v1/vms/${paused}/resume`)).status).toBe(204)
  expect((await m.api('GET', `/v1/vms/${paused}`)).body.state).toBe('RUNNING')
  expect((await m.api('POST', `/v1/vms/${lost}/start`)).status).toBe(204)
  await m.vmm.crash(kept)
  expect((await m.waitForState(kept, 'ERROR')).lastError).toBe('VM process exited unexpectedly (signal SIGKILL)')
})

it('a second restart with nothing changed re-attaches every running VM again and removes nothing', async () => {
  const running = (await m.api('GET', '/v1/vms')).body.filter((v: { state: string }) => v.state === 'RUNNING').map((v: { id: string }) => v.id)
  const summary = await m.restart()
  expect(summary.reattached.toSorted()).toEqual(running.toSorted())
  expect([summary.stopped, summary.removed, summary.removedTaps]).toEqual([[], [], []])
})

it('kills a VMM of this instance that no VM row owns, and removes its directory', async () => {
  const orphan = await runningVm()
  const pid = m.vmm.vm(orphan)!.pid
  // The row goes while the manager is down (a database restored from a backup, say): its VMM still runs.
  const summary = await m.restart(async () => {
    const { db } = await openDatabase({ sqlitePath: m.s.config.sqlitePath })
    await createVmsRepo(db).remove(orphan)
    await db.destroy()
  })
  expect(summary.reaped).toEqual([pid])
  expect(m.vmm.running()).not.toContain(orphan)
  expect(m.vmDirs()).not.toContain(orphan)
  expect(m.ramFiles()).not.toContain(`${orphan}.ram`)
})
