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
import { createImageSeedsRepo } from '../../src/store/image-seeds-repo.ts'
import { createTemplatesRepo } from '../../src/store/templates-repo.ts'
import { migrationProvider } from '../../src/store/migrations.ts'
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely'
import { openSqlite } from '../../src/store/sqlite-node.ts'
import { Migrator } from 'kysely/migration'
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
  inheritedSecretNames: [],
  createdBy: null,
})

/** A database as the previous release left it: migrated up to 0007, one seed per image on its row. */
async function openAt0007(dialect: 'sqlite' | 'postgres', url: string | undefined, file: string): Promise<Kysely<any>> {
  const db = url
    ? new Kysely<any>({ dialect: new PostgresDialect({ pool: new (await import('pg')).default.Pool({ connectionString: url, max: 1 }) }) })
    : new Kysely<any>({ dialect: new SqliteDialect({ database: openSqlite(file) }) })
  const { error } = await new Migrator({ db, provider: migrationProvider(dialect) }).migrateTo('0007_peer_links')
  if (error) throw error
  return db
}

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
    // The state is a compare-and-set: applied from the state the row is in, never from another.
    expect(await repo.setState(id, 'STOPPED', 'RUNNING')).toBe(false)
    expect(await repo.setState(id, 'CREATED', 'RUNNING', { vmmPid: 123, vmmStartTime: '456', bootMs: 789 })).toBe(true)
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
    const base = { name: 'n', description: 'd', createdAt: new Date().toISOString(), kernelFilename: null, initrdFilename: null, rootfsFilename: null, baseRootfsBytes: null, kernelUploadedAt: null, rootfsUploadedAt: null, manifest: null, createdBy: null }
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

  it('keeps one seed per image and shape, with its last use; drops them with the image or their snapshot', async () => {
    const images = createImagesRepo(dbs[dialect])
    const repo = createImageSeedsRepo(dbs[dialect])
    const base = { name: 'n', description: 'd', createdAt: new Date().toISOString(), kernelFilename: null, initrdFilename: null, rootfsFilename: null, baseRootfsBytes: null, kernelUploadedAt: null, rootfsUploadedAt: null, manifest: null, createdBy: null }
    await images.insert({ ...base, id: 'img-s1' })
    await images.insert({ ...base, id: 'img-s2' })
    const small = { cpu: 1, memMb: 256 }
    const big = { cpu: 2, memMb: 1024 }
    await repo.put('img-s1', big, { status: 'pending', snapshotId: null, error: null })
    expect(await repo.get('img-s1', big)).toMatchObject({ status: 'pending', snapshotId: null, lastUsedAt: null })
    await repo.put('img-s1', big, { status: 'ready', snapshotId: 'snap-big', error: null }, { used: true })
    const built = (await repo.get('img-s1', big))!
    expect(built.lastUsedAt).toBe(built.updatedAt)
    // A rebuild keeps the last use; a resume moves it on.
    await repo.put('img-s1', big, { status: 'pending', snapshotId: 'snap-big', error: null })
    expect((await repo.get('img-s1', big))!.lastUsedAt).toBe(built.lastUsedAt)
    await new Promise((r) => setTimeout(r, 5))
    await repo.touch('img-s1', big)
    expect((await repo.get('img-s1', big))!.lastUsedAt! > built.lastUsedAt!).toBe(true)
    await repo.put('img-s1', small, { status: 'failed', snapshotId: null, error: 'no' })
    await repo.put('img-s2', small, { status: 'ready', snapshotId: 'snap-s2', error: null }, { used: true })
    expect((await repo.list('img-s1')).map((s) => [s.cpu, s.memMb, s.status])).toEqual([[1, 256, 'failed'], [2, 1024, 'pending']])
    expect(await repo.list()).toHaveLength(3)
    await repo.forgetSnapshot('snap-big')
    expect((await repo.list('img-s1')).map((s) => s.memMb)).toEqual([256])
    await images.remove('img-s1')
    expect((await repo.list()).map((s) => s.imageId)).toEqual(['img-s2'])
    // A build that outlived its image leaves a row nothing shows; it is cleaned up.
    await repo.put('img-gone', small, { status: 'ready', snapshotId: 'snap-gone', error: null })
    await repo.removeOrphans()
    expect((await repo.list()).map((s) => s.imageId)).toEqual(['img-s2'])
    await repo.remove('img-s2', small)
    await images.remove('img-s2')
    expect(await repo.list()).toEqual([])
  })

  it('an upgrade carries the single seed of an image over as the seed of its shape (0008)', async () => {
    let url: string | undefined
    let file = ''
    if (dialect === 'postgres') {
      await sql`create database rds_upgrade`.execute(dbs.postgres)
      url = pg.url.replace('/postgres?', '/rds_upgrade?')
    } else {
      file = path.join(sqliteDir, 'upgrade.db')
    }
    const old = await openAt0007(dialect as 'sqlite' | 'postgres', url, file)
    const now = new Date().toISOString()
    const image = (id: string, seed: [string | null, string | null, string | null]) => ({ id, name: 'n', description: 'd', created_at: now, seed_snapshot_id: seed[0], seed_status: seed[1], seed_updated_at: now, seed_error: seed[2] })
    await old.insertInto('images').values([image('img-ready', ['snap-old', 'ready', null]), image('img-failed', [null, 'failed', 'boom']), image('img-pending', ['snap-gone', 'pending', null])]).execute()
    const snapshot = { kind: 'image_seed', source_vm_id: null, image_id: 'img-ready', image_stamp: 's', cpu: 1, mem_mb: 512, memory_in_file: 1, state_bytes: 1, memory_bytes: 1, disk_bytes: 1, pause_ms: 1, created_at: now }
    await old.insertInto('snapshots').values({ id: 'snap-old', ...snapshot }).execute()
    await old.destroy()
    const { db } = await openDatabase(url ? { databaseUrl: url, sqlitePath: '' } : { sqlitePath: file })
    try {
      // Only a ready seed is carried over, under the shape of its snapshot (not today's template).
      expect(await createImageSeedsRepo(db).list()).toEqual([{ imageId: 'img-ready', cpu: 1, memMb: 512, status: 'ready', snapshotId: 'snap-old', error: null, updatedAt: now, lastUsedAt: now }])
      const row = await db.selectFrom('images').selectAll().where('id', '=', 'img-ready').executeTakeFirstOrThrow()
      expect(Object.keys(row).filter((k) => k.startsWith('seed_'))).toEqual([])
    } finally {
      await db.destroy()
    }
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

  it('keeps at most the newest N entries per VM, dropping the oldest on insert', async () => {
    const repo = createExecLogsRepo(dbs[dialect], 3)
    const add = (vmId: string, i: number) => repo.append(vmId, { timestamp: new Date().toISOString(), type: 'exec', input: { i }, result: { exitCode: 0 }, durationMs: i })
    for (let i = 0; i < 5; i++) await add('vm-cap', i)
    await add('vm-other', 0)
    const kept = await repo.list('vm-cap', { limit: 10 })
    expect(kept.entries.map((e) => e.input.i)).toEqual([4, 3, 2])
    expect(kept.hasMore).toBe(false)
    expect((await repo.list('vm-other', { limit: 10 })).entries).toHaveLength(1)
    // A lower cap (a restart with a smaller EXEC_LOG_MAX_ENTRIES) applies on the next insert.
    await createExecLogsRepo(dbs[dialect], 1).append('vm-cap', { timestamp: new Date().toISOString(), type: 'exec', input: { i: 5 }, result: {}, durationMs: 0 })
    expect((await repo.list('vm-cap', { limit: 10 })).entries.map((e) => e.input.i)).toEqual([5])
    const rows = await dbs[dialect].selectFrom('exec_logs').select('id').where('vm_id', '=', 'vm-cap').execute()
    expect(rows).toHaveLength(1)
    for (const vmId of ['vm-cap', 'vm-other']) await repo.removeForVm(vmId)
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

  it('keeps templates: unique names, a build recorded only for the generation it started from', async () => {
    const repo = createTemplatesRepo(dbs[dialect])
    const definition = { cpu: 1, memMb: 256, setup: ['true'], allowIps: [], env: { A: 'b' } }
    expect(await repo.insert({ name: 't1', definition, hasFiles: false, createdBy: null })).toBe(true)
    expect(await repo.insert({ name: 't1', definition, hasFiles: true, createdBy: null })).toBe(false)
    const first = (await repo.get('t1'))!
    expect(first).toMatchObject({ status: 'building', generation: 1, definition, hasFiles: false, snapshotId: null, setupOutput: [] })
    const step = { cmd: 'true', exitCode: 0, timedOut: false, durationMs: 1, stdout: '', stderr: '' }
    expect(await repo.finishBuild(first, { status: 'ready', error: null, setupOutput: [step], snapshotId: 'snap-1', builtImageId: 'img-1', builtAt: first.createdAt })).toBe(true)
    expect(await repo.redefine('t1', { hasFiles: true })).toBe(2)
    // The build of generation 1 is overtaken: it records nothing; the serving snapshot stays.
    expect(await repo.finishBuild(first, { status: 'failed', error: 'late', setupOutput: [] })).toBe(false)
    expect(await repo.get('t1')).toMatchObject({ status: 'building', generation: 2, snapshotId: 'snap-1', hasFiles: true, setupOutput: [step] })
    expect([...(await repo.servingSnapshotIds())]).toEqual(['snap-1'])
    expect(await repo.count()).toBe(1)
    await repo.remove('t1')
    expect([await repo.get('t1'), await repo.redefine('t1', {})]).toEqual([undefined, undefined])
  })

})
