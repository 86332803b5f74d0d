// Persistence of image seeds: per image and VM shape, the state of its seed snapshot. The
// snapshot itself is a row of `snapshots` (kind image_seed); this row says which shape it serves.
import type { Selectable } from 'kysely'
import type { Db } from './db.ts'
import type { ImageSeedsTable } from './schema.ts'

export interface SeedShape {
  cpu: number
  memMb: number
}

export type SeedStatus = 'pending' | 'ready' | 'failed'

export interface ImageSeedRecord extends SeedShape {
  imageId: string
  status: SeedStatus
  /** While pending, the previous seed's snapshot (kept until the new one is recorded). */
  snapshotId: string | null
  error: string | null
  updatedAt: string
  lastUsedAt: string | null
}

const fromRow = (r: Selectable<ImageSeedsTable>): ImageSeedRecord => ({
  imageId: r.image_id,
  cpu: r.cpu,
  memMb: r.mem_mb,
  status: r.status as SeedStatus,
  snapshotId: r.snapshot_id,
  error: r.error,
  updatedAt: r.updated_at,
  lastUsedAt: r.last_used_at,
})

export function createImageSeedsRepo(db: Db) {
  return {
    async list(imageId?: string): Promise<ImageSeedRecord[]> {
      let q = db.selectFrom('image_seeds').selectAll()
      if (imageId !== undefined) q = q.where('image_id', '=', imageId)
      return (await q.orderBy('image_id').orderBy('cpu').orderBy('mem_mb').execute()).map(fromRow)
    },

    async get(imageId: string, shape: SeedShape): Promise<ImageSeedRecord | undefined> {
      const r = await db.selectFrom('image_seeds').selectAll().where('image_id', '=', imageId).where('cpu', '=', shape.cpu).where('mem_mb', '=', shape.memMb).executeTakeFirst()
      return r && fromRow(r)
    },

    /** Creates or replaces the shape's state; `used` also marks it as just used (a finished build). */
    async put(imageId: string, shape: SeedShape, state: Pick<ImageSeedRecord, 'status' | 'snapshotId' | 'error'>, opts: { used?: boolean } = {}): Promise<void> {
      const now = new Date().toISOString()
      const set = { status: state.status, snapshot_id: state.snapshotId, error: state.error, updated_at: now, ...(opts.used ? { last_used_at: now } : {}) }
      await db
        .insertInto('image_seeds')
        .values({ image_id: imageId, cpu: shape.cpu, mem_mb: shape.memMb, last_used_at: null, ...set })
        .onConflict((oc) => oc.columns(['image_id', 'cpu', 'mem_mb']).doUpdateSet(set))
        .execute()
    },

    /** A create resumed from this shape's seed. */
    async touch(imageId: string, shape: SeedShape): Promise<void> {
      await db.updateTable('image_seeds').set({ last_used_at: new Date().toISOString() }).where('image_id', '=', imageId).where('cpu', '=', shape.cpu).where('mem_mb', '=', shape.memMb).execute()
    },

    async remove(imageId: string, shape: SeedShape): Promise<void> {
      await db.deleteFrom('image_seeds').where('image_id', '=', imageId).where('cpu', '=', shape.cpu).where('mem_mb', '=', shape.memMb).execute()
    },

    /** The snapshot was deleted: no shape has a seed through it any more. */
    async forgetSnapshot(snapshotId: string): Promise<void> {
      await db.deleteFrom('image_seeds').where('snapshot_id', '=', snapshotId).execute()
    },

    /** Rows left by a build that outlived its image (the image's removal deletes the others). */
    async removeOrphans(): Promise<void> {
      await db.deleteFrom('image_seeds').where('image_id', 'not in', db.selectFrom('images').select('id')).execute()
    },
  }
}
export type ImageSeedsRepo = ReturnType<typeof createImageSeedsRepo>
