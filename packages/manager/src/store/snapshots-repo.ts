// Persistence of snapshot records. The files (state, memory, disk) live under
// STORAGE_ROOT/snapshots/<id>; the row is written only once they are complete.
import type { Selectable } from 'kysely'
import type { Db } from './db.ts'
import type { SnapshotsTable } from './schema.ts'

export type SnapshotKind = 'user' | 'image_seed' | 'template'

export interface SnapshotRecord {
  id: string
  kind: SnapshotKind
  sourceVmId: string | null
  imageId: string
  imageStamp: string
  cpu: number
  memMb: number
  /** RAM is in memory.raw (mapped copy-on-write by clones); false: it is inside the state stream. */
  memoryInFile: boolean
  /** The guest RAM's size: memMb MiB, or a little more for a TCG guest (runtime/vmm/qemu/guest-ram.ts). A restore gives it the same. */
  ramBytes: number
  stateBytes: number
  memoryBytes: number
  diskBytes: number
  pauseMs: number
  createdAt: string
  /**
   * Names of the secrets whose values the snapshot's memory may hold (the source VM's secretEnv,
   * and what it inherited itself); empty when none. A clone resumes those processes, values and all.
   */
  secretNames: string[]
  /** Who took it (actorLabel); null for image seeds and older snapshots. */
  createdBy: string | null
}

const fromRow = (r: Selectable<SnapshotsTable>): SnapshotRecord => ({
  id: r.id,
  kind: r.kind as SnapshotKind,
  sourceVmId: r.source_vm_id,
  imageId: r.image_id,
  imageStamp: r.image_stamp,
  cpu: r.cpu,
  memMb: r.mem_mb,
  memoryInFile: Boolean(r.memory_in_file),
  ramBytes: r.ram_bytes === null ? r.mem_mb * 1024 * 1024 : Number(r.ram_bytes),
  stateBytes: Number(r.state_bytes),
  memoryBytes: Number(r.memory_bytes),
  diskBytes: Number(r.disk_bytes),
  pauseMs: r.pause_ms,
  createdAt: r.created_at,
  secretNames: r.secret_names ? (JSON.parse(r.secret_names) as string[]) : [],
  createdBy: r.created_by,
})

export function createSnapshotsRepo(db: Db) {
  return {
    async get(id: string): Promise<SnapshotRecord | undefined> {
      const r = await db.selectFrom('snapshots').selectAll().where('id', '=', id).executeTakeFirst()
      return r && fromRow(r)
    },
    async list(kinds: SnapshotKind[]): Promise<SnapshotRecord[]> {
      if (kinds.length === 0) return []
      return (await db.selectFrom('snapshots').selectAll().where('kind', 'in', kinds).orderBy('created_at').execute()).map(fromRow)
    },
    async count(kind: SnapshotKind): Promise<number> {
      const r = await db.selectFrom('snapshots').select((eb) => eb.fn.countAll<number | string>().as('n')).where('kind', '=', kind).executeTakeFirstOrThrow()
      return Number(r.n)
    },
    async insert(s: SnapshotRecord): Promise<void> {
      await db
        .insertInto('snapshots')
        .values({
          id: s.id,
          kind: s.kind,
          source_vm_id: s.sourceVmId,
          image_id: s.imageId,
          image_stamp: s.imageStamp,
          cpu: s.cpu,
          mem_mb: s.memMb,
          memory_in_file: s.memoryInFile ? 1 : 0,
          ram_bytes: s.ramBytes,
          state_bytes: s.stateBytes,
          memory_bytes: s.memoryBytes,
          disk_bytes: s.diskBytes,
          pause_ms: s.pauseMs,
          created_at: s.createdAt,
          secret_names: s.secretNames.length ? JSON.stringify(s.secretNames) : null,
          created_by: s.createdBy,
        })
        .execute()
    },
    async remove(id: string): Promise<void> {
      await db.deleteFrom('snapshots').where('id', '=', id).execute()
    },
  }
}
export type SnapshotsRepo = ReturnType<typeof createSnapshotsRepo>
