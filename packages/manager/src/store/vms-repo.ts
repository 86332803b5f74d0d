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
}

export type VmPurpose = 'user' | 'seed' | 'pool' | 'template'

const fromRow = (r: Selectable<VmsTable>): VmRecord => ({
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
})

/** Fields written beside a state change or on their own; `state` itself only through setState. */
export type VmPatch = Partial<Omit<VmRecord, 'id' | 'createdAt' | 'state'>>

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
  return c
}

export function createVmsRepo(db: Db, dialect: SqlDialect = 'sqlite') {
  return {
    async get(id: string): Promise<VmRecord | undefined> {
      const r = await db.selectFrom('vms').selectAll().where('id', '=', id).executeTakeFirst()
      return r && fromRow(r)
    },
    async list(): Promise<VmRecord[]> {
      return (await db.selectFrom('vms').selectAll().orderBy('created_at').execute()).map(fromRow)
    },
    async listInStates(states: VmState[]): Promise<VmRecord[]> {
      if (states.length === 0) return []
      return (await db.selectFrom('vms').selectAll().where('state', 'in', states).execute()).map(fromRow)
    },
    /**
     * Inserts a new VM only if the quota still allows it, in one transaction, so two concurrent
     * creates cannot both take the last slot. Returns the reason when refused.
     */
    async insertWithinQuota(vm: VmRecord, limits: { maxVms: number }): Promise<'ok' | 'max_vms'> {
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
        const now = new Date().toISOString()
        await tx
          .insertInto('vms')
          .values({ ...(toColumns(vm) as VmsTable), id: vm.id, created_at: vm.createdAt, updated_at: now })
          .execute()
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
        // What only exists for the VM goes with its row: a port opened to preview is the VM's.
        await tx.deleteFrom('vm_public_ports').where('vm_id', '=', id).execute()
        await tx.deleteFrom('vms').where('id', '=', id).execute()
      })
    },
    /** A warm VM becomes the caller's, if the caller's quota has room (same rule as insertWithinQuota). */
    async adoptWithinQuota(id: string, patch: VmPatch, limits: { maxVms: number }): Promise<'ok' | 'max_vms'> {
      return db.transaction().execute(async (tx) => {
        if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(hashtext('rds.vms.quota'))`.execute(tx)
        const { n } = await tx.selectFrom('vms').select((e) => e.fn.countAll<number>().as('n')).where('purpose', '=', 'user').executeTakeFirstOrThrow()
        if (Number(n) >= limits.maxVms) return 'max_vms' as const
        await tx.updateTable('vms').set({ ...toColumns(patch), updated_at: new Date().toISOString() }).where('id', '=', id).execute()
        return 'ok' as const
      })
    },
    async listByPurpose(purpose: VmPurpose): Promise<VmRecord[]> {
      return (await db.selectFrom('vms').selectAll().where('purpose', '=', purpose).orderBy('created_at').execute()).map(fromRow)
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
