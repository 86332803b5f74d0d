// Persistence of VM records. The service layer works with `VmRecord` (camelCase, parsed JSON);
// this file is the only one that knows the column layout.
import { sql, type Selectable } from 'kysely'
import type { SqlDialect } from './migrations.ts'
import type { Db } from './db.ts'
import type { VmsTable } from './schema.ts'

/** The states a VM row can be in; which change to which is services/vm-lifecycle.ts's table. */
export const VM_STATES = ['CREATED', 'STARTING', 'RUNNING', 'PAUSED', 'STOPPING', 'STOPPED', 'ERROR'] as const
export type VmState = (typeof VM_STATES)[number]

export interface VmRecord {
  id: string
  state: VmState
  cpu: number
  memMb: number
  imageId: string
  guestIp: string | null
  allowIps: string[]
  allowDomains: string[]
  /** Sealed secretEnv (services/secret-env.ts), or null. */
  secretEnv: string | null
  outboundInternet: boolean
  provisionMode: 'boot' | 'snapshot' | 'pool' | null
  createdAt: string
  startedAt: string | null
  bootMs: number | null
  lastError: string | null
  vmmPid: number | null
  vmmStartTime: string | null
  /** user: the caller's; seed: builds an image seed snapshot; pool: warm, not handed out yet. */
  purpose: VmPurpose
  /** The snapshot whose memory file the running VMM maps (null after a cold boot). */
  memorySnapshotId: string | null
  /** The snapshot the VM was created from, if any. */
  sourceSnapshotId: string | null
  /**
   * Secret names the snapshot it was created from held in memory: the VM may carry their values
   * (from the source VM) whatever its own secretEnv says, so its own snapshots count them too.
   */
  inheritedSecretNames: string[]
  /** Who created it (actorLabel), null for the manager's own (pool, seed) and for VMs older than accounts. */
  createdBy: string | null
  /** When the expiry reaper acts on it; null while no clock runs (no TTL, paused, or after a pause on expiry). */
  expiresAt: string | null
  /** The TTL last given: a resume (or start) of a VM whose clock stopped runs it again from now. */
  ttlSeconds: number | null
  onExpire: OnExpire
  labels: Record<string, string>
}

export type OnExpire = 'delete' | 'pause'

/** Label filter: every entry must match (AND); a null value means "has the key, any value". */
export type LabelFilter = Array<{ key: string; value: string | null }>

export type VmPurpose = 'user' | 'seed' | 'pool' | 'template'

const fromRow = (r: Selectable<VmsTable>, labels: Record<string, string> = {}): VmRecord => ({
  id: r.id,
  state: r.state as VmState,
  cpu: r.cpu,
  memMb: r.mem_mb,
  imageId: r.image_id,
  guestIp: r.guest_ip,
  allowIps: JSON.parse(r.allow_ips) as string[],
  allowDomains: JSON.parse(r.allow_domains) as string[],
  secretEnv: r.secret_env,
  outboundInternet: Boolean(r.outbound_internet),
  provisionMode: r.provision_mode as VmRecord['provisionMode'],
  createdAt: r.created_at,
  startedAt: r.started_at,
  bootMs: r.boot_ms,
  lastError: r.last_error,
  vmmPid: r.vmm_pid,
  vmmStartTime: r.vmm_start_time,
  purpose: r.purpose as VmPurpose,
  memorySnapshotId: r.memory_snapshot_id,
  sourceSnapshotId: r.source_snapshot_id,
  inheritedSecretNames: r.inherited_secret_names ? (JSON.parse(r.inherited_secret_names) as string[]) : [],
  createdBy: r.created_by,
  expiresAt: r.expires_at,
  ttlSeconds: r.ttl_seconds,
  onExpire: r.on_expire === 'pause' ? 'pause' : 'delete',
  labels,
})

/** Fields written beside a state change or on their own; `state` itself only through setState. */
/** `perCreator`: at most `max` VMs whose createdBy is this (a minted key's quota). */
export interface QuotaLimits {
  maxVms: number
  perCreator?: { createdBy: string; max: number }
}
export type QuotaVerdict = 'ok' | 'max_vms' | 'max_per_creator'

export type VmPatch = Partial<Omit<VmRecord, 'id' | 'createdAt' | 'state' | 'labels'>>

const toColumns = (p: VmPatch & { state?: VmState }): Partial<VmsTable> => {
  const c: Partial<VmsTable> = {}
  if (p.state !== undefined) c.state = p.state
  if (p.cpu !== undefined) c.cpu = p.cpu
  if (p.memMb !== undefined) c.mem_mb = p.memMb
  if (p.imageId !== undefined) c.image_id = p.imageId
  if (p.guestIp !== undefined) c.guest_ip = p.guestIp
  if (p.allowIps !== undefined) c.allow_ips = JSON.stringify(p.allowIps)
  if (p.allowDomains !== undefined) c.allow_domains = JSON.stringify(p.allowDomains)
  if (p.secretEnv !== undefined) c.secret_env = p.secretEnv
  if (p.outboundInternet !== undefined) c.outbound_internet = p.outboundInternet ? 1 : 0
  if (p.provisionMode !== undefined) c.provision_mode = p.provisionMode
  if (p.startedAt !== undefined) c.started_at = p.startedAt
  if (p.bootMs !== undefined) c.boot_ms = p.bootMs
  if (p.lastError !== undefined) c.last_error = p.lastError
  if (p.vmmPid !== undefined) c.vmm_pid = p.vmmPid
  if (p.vmmStartTime !== undefined) c.vmm_start_time = p.vmmStartTime
  if (p.purpose !== undefined) c.purpose = p.purpose
  if (p.memorySnapshotId !== undefined) c.memory_snapshot_id = p.memorySnapshotId
  if (p.sourceSnapshotId !== undefined) c.source_snapshot_id = p.sourceSnapshotId
  if (p.inheritedSecretNames !== undefined) c.inherited_secret_names = p.inheritedSecretNames.length ? JSON.stringify(p.inheritedSecretNames) : null
  if (p.createdBy !== undefined) c.created_by = p.createdBy
  if (p.expiresAt !== undefined) c.expires_at = p.expiresAt
  if (p.ttlSeconds !== undefined) c.ttl_seconds = p.ttlSeconds
  if (p.onExpire !== undefined) c.on_expire = p.onExpire
  return c
}

type Tx = Pick<Db, 'selectFrom' | 'deleteFrom' | 'insertInto'>

async function labelsOf(db: Tx, ids: string[]): Promise<Map<string, Record<string, string>>> {
  const out = new Map<string, Record<string, string>>()
  if (ids.length === 0) return out
  // Chunked: PostgreSQL and SQLite both bound the number of parameters of one statement.
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await db.selectFrom('vm_labels').select(['vm_id', 'key', 'value']).where('vm_id', 'in', ids.slice(i, i + 500)).orderBy('key').execute()
    for (const r of rows) {
      const m = out.get(r.vm_id) ?? {}
      m[r.key] = r.value
      out.set(r.vm_id, m)
    }
  }
  return out
}

async function writeLabels(db: Tx, id: string, labels: Record<string, string>): Promise<void> {
  await db.deleteFrom('vm_labels').where('vm_id', '=', id).execute()
  const rows = Object.entries(labels).map(([key, value]) => ({ vm_id: id, key, value }))
  if (rows.length) await db.insertInto('vm_labels').values(rows).execute()
}

/** The user VMs one creator has now, whatever their state (a stopped VM still holds its disk). */
async function countCreatedBy(tx: Db, createdBy: string): Promise<number> {
  const { n } = await tx.selectFrom('vms').select((e) => e.fn.countAll<number>().as('n')).where('purpose', '=', 'user').where('created_by', '=', createdBy).executeTakeFirstOrThrow()
  return Number(n)
}

export function createVmsRepo(db: Db, dialect: SqlDialect = 'sqlite') {
  const withLabels = async (rows: Selectable<VmsTable>[]): Promise<VmRecord[]> => {
    const labels = await labelsOf(db, rows.map((r) => r.id))
    return rows.map((r) => fromRow(r, labels.get(r.id)))
  }
  return {
    async get(id: string): Promise<VmRecord | undefined> {
      const r = await db.selectFrom('vms').selectAll().where('id', '=', id).executeTakeFirst()
      return r && fromRow(r, (await labelsOf(db, [id])).get(id))
    },
    async list(): Promise<VmRecord[]> {
      return withLabels(await db.selectFrom('vms').selectAll().orderBy('created_at').execute())
    },
    /** The caller's VMs (purpose user) carrying every label of `filter`; the filter runs in SQL on the (key, value) index. */
    async listUser(filter: LabelFilter = []): Promise<VmRecord[]> {
      let q = db.selectFrom('vms').selectAll().where('purpose', '=', 'user')
      for (const { key, value } of filter) {
        q = q.where('id', 'in', (sub) => {
          const s = sub.selectFrom('vm_labels').select('vm_id').where('key', '=', key)
          return value === null ? s : s.where('value', '=', value)
        })
      }
      return withLabels(await q.orderBy('created_at').execute())
    },
    async listInStates(states: VmState[]): Promise<VmRecord[]> {
      if (states.length === 0) return []
      return withLabels(await db.selectFrom('vms').selectAll().where('state', 'in', states).execute())
    },
    /** The earliest deadline of any VM, if one is set: what the expiry reaper sleeps until. */
    async nextExpiry(): Promise<string | undefined> {
      const r = await db.selectFrom('vms').select((e) => e.fn.min('expires_at').as('t')).where('expires_at', 'is not', null).executeTakeFirst()
      return (r?.t as string | null | undefined) ?? undefined
    },
    /** Ids of the VMs whose deadline is at or before `at`, earliest first. */
    async expiredIds(at: string): Promise<string[]> {
      return (await db.selectFrom('vms').select('id').where('expires_at', '<=', at).orderBy('expires_at').execute()).map((r) => r.id)
    },
    /** Replaces the VM's labels as a whole. */
    async setLabels(id: string, labels: Record<string, string>): Promise<void> {
      await db.transaction().execute((tx) => writeLabels(tx, id, labels))
    },
    /**
     * Inserts a new VM only if the quota still allows it, in one transaction, so two concurrent
     * creates cannot both take the last slot. Returns the reason when refused.
     */
    async insertWithinQuota(vm: VmRecord, limits: QuotaLimits): Promise<QuotaVerdict> {
      return db.transaction().execute(async (tx) => {
        // SQLite runs one write transaction at a time; PostgreSQL (READ COMMITTED) would let two
        // transactions count the same rows, so they queue on a transaction-scoped advisory lock.
        if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(hashtext('rds.vms.quota'))`.execute(tx)
        // The caller's VMs count against the quota; seed and warm-pool VMs are the manager's own,
        // and a pool insert also counts those so the pool never pushes the host past maxVms.
        let q = tx.selectFrom('vms').select((e) => e.fn.countAll<number>().as('n'))
        if (vm.purpose === 'user') q = q.where('purpose', '=', 'user')
        const { n } = await q.executeTakeFirstOrThrow()
        if (Number(n) >= limits.maxVms) return 'max_vms' as const
        if (limits.perCreator && (await countCreatedBy(tx, limits.perCreator.createdBy)) >= limits.perCreator.max) return 'max_per_creator' as const
        const now = new Date().toISOString()
        await tx
          .insertInto('vms')
          .values({ ...(toColumns(vm) as VmsTable), id: vm.id, created_at: vm.createdAt, updated_at: now })
          .execute()
        await writeLabels(tx, vm.id, vm.labels)
        return 'ok' as const
      })
    },
    /**
     * Gives the VM the lowest free address index (addresses are reused after delete) and returns
     * it, or undefined when all `capacity` are taken. The unique index on guest_ip is the final
     * guard; the lock only spares PostgreSQL callers a retry.
     */
    async assignAddress(id: string, capacity: number, addressAt: (index: number) => string, indexOf: (address: string) => number | undefined): Promise<string | undefined> {
      return db.transaction().execute(async (tx) => {
        if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(hashtext('rds.vms.address'))`.execute(tx)
        const rows = await tx.selectFrom('vms').select('guest_ip').where('guest_ip', 'is not', null).execute()
        const used = new Set(rows.map((r) => indexOf(r.guest_ip!)))
        for (let i = 0; i < capacity; i++) {
          if (used.has(i)) continue
          const address = addressAt(i)
          await tx.updateTable('vms').set({ guest_ip: address, updated_at: new Date().toISOString() }).where('id', '=', id).execute()
          return address
        }
        return undefined
      })
    },
    async update(id: string, patch: VmPatch): Promise<void> {
      await db.updateTable('vms').set({ ...toColumns(patch), updated_at: new Date().toISOString() }).where('id', '=', id).execute()
    },
    /**
     * Compare-and-set of the state (with `patch` in the same row write): applied only while the
     * row is still in `from`. Returns whether it was. Callers: services/vm-lifecycle.ts only.
     */
    async setState(id: string, from: VmState, to: VmState, patch: VmPatch = {}): Promise<boolean> {
      const r = await db.updateTable('vms').set({ ...toColumns({ ...patch, state: to }), updated_at: new Date().toISOString() }).where('id', '=', id).where('state', '=', from).executeTakeFirst()
      return Number(r.numUpdatedRows) === 1
    },
    async remove(id: string): Promise<void> {
      await db.transaction().execute(async (tx) => {
        await tx.deleteFrom('vm_labels').where('vm_id', '=', id).execute()
        // What only exists for the VM goes with its row: a port opened to preview is the VM's.
        await tx.deleteFrom('vm_public_ports').where('vm_id', '=', id).execute()
        await tx.deleteFrom('vms').where('id', '=', id).execute()
      })
    },
    /** A warm VM becomes the caller's, if the caller's quota has room (same rule as insertWithinQuota). */
    async adoptWithinQuota(id: string, patch: VmPatch, labels: Record<string, string>, limits: QuotaLimits): Promise<QuotaVerdict> {
      return db.transaction().execute(async (tx) => {
        if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(hashtext('rds.vms.quota'))`.execute(tx)
        const { n } = await tx.selectFrom('vms').select((e) => e.fn.countAll<number>().as('n')).where('purpose', '=', 'user').executeTakeFirstOrThrow()
        if (Number(n) >= limits.maxVms) return 'max_vms' as const
        if (limits.perCreator && (await countCreatedBy(tx, limits.perCreator.createdBy)) >= limits.perCreator.max) return 'max_per_creator' as const
        await tx.updateTable('vms').set({ ...toColumns(patch), updated_at: new Date().toISOString() }).where('id', '=', id).execute()
        await writeLabels(tx, id, labels)
        return 'ok' as const
      })
    },
    /** VMs per purpose and state, for the metrics (only the combinations that exist). */
    async countByState(): Promise<Array<{ purpose: VmPurpose; state: VmState; n: number }>> {
      const rows = await db.selectFrom('vms').select(['purpose', 'state', (e) => e.fn.countAll<number>().as('n')]).groupBy(['purpose', 'state']).execute()
      return rows.map((r) => ({ purpose: r.purpose as VmPurpose, state: r.state as VmState, n: Number(r.n) }))
    },
    async listByPurpose(purpose: VmPurpose): Promise<VmRecord[]> {
      return withLabels(await db.selectFrom('vms').selectAll().where('purpose', '=', purpose).orderBy('created_at').execute())
    },
    /** VMs whose VMM maps this snapshot's memory file: the file must outlive them. */
    async countMappingSnapshot(snapshotId: string): Promise<number> {
      const { n } = await db.selectFrom('vms').select((e) => e.fn.countAll<number>().as('n')).where('memory_snapshot_id', '=', snapshotId).executeTakeFirstOrThrow()
      return Number(n)
    },
    async countUsingImage(imageId: string): Promise<number> {
      const { n } = await db.selectFrom('vms').select((e) => e.fn.countAll<number>().as('n')).where('image_id', '=', imageId).executeTakeFirstOrThrow()
      return Number(n)
    },
  }
}
export type VmsRepo = ReturnType<typeof createVmsRepo>
