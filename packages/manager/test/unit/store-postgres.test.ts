// The same schema, migrations and queries on PostgreSQL as on the embedded SQLite: every
// repository is exercised on both, so DATABASE_URL is a real option, not a promise.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDatabase, type Db } from '../../src/store/db.ts'
import { createVmsRepo, type VmRecord } from '../../src/store/vms-repo.ts'
import { createImagesRepo } from '../../src/store/images-repo.ts'
import { createExecLogsRepo } from '../../src/store/exec-logs-repo.ts'
import { createPeerLinksRepo } from '../../src/store/peer-links-repo.ts'
import { startPostgres, type TestPostgres } from '../harness/postgres.ts'
import { createAddressPlan } from '../../src/runtime/network/address-plan.ts'

let pg: TestPostgres
const sqliteDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-sqlite-'))
const dbs: Record<string, Db> = {}

beforeAll(async () => {
  pg = startPostgres()
  dbs.postgres = (await openDatabase({ databaseUrl: pg.url, sqlitePath: '' })).db
  dbs.sqlite = (await openDatabase({ sqlitePath: path.join(sqliteDir, 'm.db') })).db
})
afterAll(async () => {
  for (const db of Object.values(dbs)) await db.destroy()
  pg?.stop()
  fs.rmSync(sqliteDir, { recursive: true, force: true })
})

const vm = (id: string): VmRecord => ({
  id,
  state: 'CREATED',
  cpu: 1,
  memMb: 256,
  imageId: 'img-1',
  guestIp: null,
  allowIps: ['10.0.0.1/32'],
  allowDomains: ['api.example.com'],
  secretEnv: 'v1:sealed',
  outboundInternet: true,
  provisionMode: null,
  createdAt: new Date().toISOString(),
  startedAt: null,
  bootMs: null,
  lastError: null,
  vmmPid: null,
  vmmStartTime: null,
  purpose: 'user',
  memorySnapshotId: null,
  sourceSnapshotId: null,
})

describe.each(['sqlite', 'postgres'])('store on %s', (dialect) => {
  it('migrates idempotently', async () => {
    const again = await openDatabase(dialect === 'postgres' ? { databaseUrl: pg.url, sqlitePath: '' } : { sqlitePath: path.join(sqliteDir, 'm.db') })
    await again.db.destroy()
  })

  it('keeps VM records, enforces the quota atomically under concurrency', async () => {
    const repo = createVmsRepo(dbs[dialect], dialect as 'sqlite' | 'postgres')
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => repo.insertWithinQuota(vm(`${dialect}-vm-${i}`), { maxVms: 4 })))
    expect(results.filter((r) => r === 'ok')).toHaveLength(4)
    const all = await repo.list()
    expect(all).toHaveLength(4)
    const id = all[0].id
    await repo.update(id, { state: 'RUNNING', vmmPid: 123, vmmStartTime: '456', bootMs: 789 })
    expect(await repo.get(id)).toMatchObject({ state: 'RUNNING', vmmPid: 123, vmmStartTime: '456', bootMs: 789, allowIps: ['10.0.0.1/32'], outboundInternet: true })
    expect((await repo.listInStates(['RUNNING'])).map((v) => v.id)).toEqual([id])
    expect(await repo.countUsingImage('img-1')).toBe(4)
    for (const v of all) await repo.remove(v.id)
    expect(await repo.list()).toEqual([])
  })

  it('hands out each VM address once, lowest free first, reused after delete, under concurrency', async () => {
    const repo = createVmsRepo(dbs[dialect], dialect as 'sqlite' | 'postgres')
    const plan = createAddressPlan('10.9.0.0/29', '169.254.9.0/30') // 5 VM addresses
    const ids = Array.from({ length: 7 }, (_, i) => `${dialect}-net-${i}`)
    for (const id of ids) expect(await repo.insertWithinQuota(vm(id), { maxVms: 100 })).toBe('ok')
    const got = await Promise.all(ids.map((id) => repo.assignAddress(id, plan.capacity, plan.addressAt, plan.indexOf)))
    const given = got.filter((a): a is string => a !== undefined)
    expect(given.sort()).toEqual(['10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6'])
    expect(got.filter((a) => a === undefined)).toHaveLength(2)
    const holder = (await repo.list()).find((v) => v.guestIp === '10.9.0.4')!
    await repo.remove(holder.id)
    const waiting = ids.find((_id, i) => got[i] === undefined)!
    expect(await repo.assignAddress(waiting, plan.capacity, plan.addressAt, plan.indexOf)).toBe('10.9.0.4')
    // The unique index is the last guard against two VMs with one address.
    const other = (await repo.list()).find((v) => v.guestIp !== '10.9.0.4' && v.guestIp)!
    await expect(repo.update(other.id, { guestIp: '10.9.0.4' })).rejects.toThrow()
    for (const id of ids) await repo.remove(id)
  })

  it('keeps images and the default image setting', async () => {
    const repo = createImagesRepo(dbs[dialect])
    const base = { name: 'n', description: 'd', createdAt: new Date().toISOString(), kernelFilename: null, initrdFilename: null, rootfsFilename: null, baseRootfsBytes: null, kernelUploadedAt: null, rootfsUploadedAt: null, manifest: null }
    await repo.insert({ ...base, id: 'img-a' })
    await repo.insert({ ...base, id: 'img-b', manifest: { recipe: 'r' } })
    await repo.update('img-a', { rootfsFilename: 'rootfs.ext4', baseRootfsBytes: 5 * 1024 ** 3 })
    expect(await repo.get('img-a')).toMatchObject({ rootfsFilename: 'rootfs.ext4', baseRootfsBytes: 5 * 1024 ** 3 })
    await repo.setDefaultId('img-a')
    await repo.setDefaultId('img-b')
    expect(await repo.getDefaultId()).toBe('img-b')
    await repo.remove('img-b')
    expect(await repo.getDefaultId()).toBeUndefined()
    expect((await repo.list()).map((i) => i.id)).toEqual(['img-a'])
  })

  it('keeps the exec history newest first, per VM and type', async () => {
    const repo = createExecLogsRepo(dbs[dialect])
    for (let i = 0; i < 3; i++) await repo.append('vm-x', { timestamp: new Date().toISOString(), type: i === 1 ? 'run-ts' : 'exec', input: { i }, result: { exitCode: 0 }, durationMs: i })
    const all = await repo.list('vm-x', { limit: 2 })
    expect(all.hasMore).toBe(true)
    expect(all.entries.map((e) => e.input.i)).toEqual([2, 1])
    expect((await repo.list('vm-x', { limit: 10, type: 'run-ts' })).entries).toHaveLength(1)
    await repo.removeForVm('vm-x')
    expect((await repo.list('vm-x', { limit: 10 })).entries).toEqual([])
  })

  it('keeps peer links in order with their manifests, replaced and removed per consumer', async () => {
    const repo = createPeerLinksRepo(dbs[dialect])
    const manifest = { sdk: { name: 's', description: 'd' }, modules: [] }
    const link = (alias: string, sourceMode: 'hidden' | 'mounted') => ({ alias, providerVmId: `${dialect}-p-${alias}`, sourceMode, manifest, syncedAt: new Date().toISOString() })
    await repo.replaceFor(`${dialect}-c1`, [link('zeta', 'hidden'), link('alpha', 'mounted')])
    await repo.replaceFor(`${dialect}-c2`, [link('alpha', 'hidden')])
    expect((await repo.listFor(`${dialect}-c1`)).map((l) => [l.alias, l.sourceMode])).toEqual([['zeta', 'hidden'], ['alpha', 'mounted']])
    expect((await repo.get(`${dialect}-c1`, 'alpha'))?.manifest).toEqual(manifest)
    await repo.replaceFor(`${dialect}-c1`, [link('alpha', 'hidden')])
    expect((await repo.listFor(`${dialect}-c1`)).map((l) => l.alias)).toEqual(['alpha'])
    await repo.removeFor(`${dialect}-c1`)
    expect(await repo.listFor(`${dialect}-c1`)).toEqual([])
    expect(await repo.get(`${dialect}-c2`, 'alpha')).toBeDefined()
  })

})
