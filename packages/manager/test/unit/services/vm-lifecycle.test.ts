// The one state writer (services/vm-lifecycle.ts) on a real SQLite store: every pair the
// table allows is applied with its patch, every other pair is refused and changes nothing,
// and nothing is written without the VM's lock.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pino from 'pino'
import { openDatabase, type Db } from '../../../src/store/db.ts'
import { createVmsRepo, type VmRecord, type VmsRepo } from '../../../src/store/vms-repo.ts'
import { KeyedLock } from '../../../src/services/locks.ts'
import { createLifecycle, IllegalTransition, TRANSITIONS, VM_STATES, type Lifecycle, type VmState } from '../../../src/services/vm-lifecycle.ts'

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-lifecycle-'))
let db: Db
let repo: VmsRepo
let lifecycle: Lifecycle
const locks = new KeyedLock()
let n = 0

beforeAll(async () => {
  db = (await openDatabase({ sqlitePath: path.join(root, 'm.db') })).db
  repo = createVmsRepo(db)
  lifecycle = createLifecycle({ repo, locks, log: pino({ level: 'silent' }) })
})
afterAll(async () => {
  await db.destroy()
  fs.rmSync(root, { recursive: true, force: true })
})

async function vmIn(state: VmState): Promise<string> {
  const vm: VmRecord = {
    id: `vm-${++n}`, state, cpu: 1, memMb: 256, imageId: 'img', guestIp: null, allowIps: [], allowDomains: [], outboundInternet: false,
    provisionMode: 'boot', createdAt: new Date().toISOString(), startedAt: null, bootMs: null, lastError: null, vmmPid: null, vmmStartTime: null,
    purpose: 'user', secretEnv: null, sourceSnapshotId: null, memorySnapshotId: null, inheritedSecretNames: [], createdBy: null, expiresAt: null, ttlSeconds: null, onExpire: 'delete', labels: {},
  }
  await repo.insertWithinQuota(vm, { maxVms: 1000 })
  return vm.id
}

const write = (id: string, to: VmState, only?: VmState[]) => locks.run(id, () => lifecycle.transition(id, to, { lastError: `to ${to}` }, only))
const allowed = (from: VmState, to: VmState) => from === to || TRANSITIONS[from].includes(to)

describe('every pair the table allows is applied, with its patch in the same write', () => {
  for (const from of VM_STATES) {
    for (const to of VM_STATES.filter((t) => allowed(from, t))) {
      it(`${from} -> ${to}`, async () => {
        const id = await vmIn(from)
        expect(await write(id, to)).toBe(true)
        expect(await repo.get(id)).toMatchObject({ state: to, lastError: `to ${to}` })
      })
    }
  }
})

it('every other pair throws IllegalTransition and leaves the VM as it was', async () => {
  const illegal = VM_STATES.flatMap((from) => VM_STATES.filter((to) => !allowed(from, to)).map((to) => [from, to] as const))
  // A few that must never become legal by accident.
  expect(illegal).toEqual(expect.arrayContaining([['CREATED', 'RUNNING'], ['STOPPED', 'RUNNING'], ['STOPPED', 'PAUSED'], ['PAUSED', 'STARTING'], ['CREATED', 'STOPPED']]))
  for (const [from, to] of illegal) {
    const id = await vmIn(from)
    await expect(write(id, to), `${from} -> ${to}`).rejects.toBeInstanceOf(IllegalTransition)
    expect(await repo.get(id)).toMatchObject({ state: from, lastError: null })
  }
})

it('a write without the VM\'s lock throws and changes nothing', async () => {
  const id = await vmIn('RUNNING')
  await expect(lifecycle.transition(id, 'STOPPING')).rejects.toThrow(/without the VM's lock/)
  // Holding another VM's lock is not holding this one's.
  await expect(locks.run('another-vm', () => lifecycle.transition(id, 'STOPPING'))).rejects.toThrow(/without the VM's lock/)
  expect((await repo.get(id))!.state).toBe('RUNNING')
})

it('an event that comes too late (`only`) or for a VM that is gone is no write and no error', async () => {
  const id = await vmIn('STOPPED')
  expect(await write(id, 'ERROR', ['RUNNING'])).toBe(false)
  expect((await repo.get(id))!.state).toBe('STOPPED')
  expect(await write('vm-gone', 'ERROR')).toBe(false)
})
