// Persistence of the activity log. Ids increase with time, so they order entries, page them
// (`before`) and resume a live stream (Last-Event-ID).
import type { Selectable } from 'kysely'
import type { Db } from './db.ts'
import type { ActivityTable } from './schema.ts'

export interface ActivityEntry {
  id: number
  createdAt: string
  type: string
  entityType: string
  entityId: string | null
  actor: string
  message: string
  meta: Record<string, unknown>
}

const fromRow = (r: Selectable<ActivityTable>): ActivityEntry => ({
  id: Number(r.id),
  createdAt: r.created_at,
  type: r.type,
  entityType: r.entity_type,
  entityId: r.entity_id,
  actor: r.actor,
  message: r.message,
  meta: JSON.parse(r.meta_json) as Record<string, unknown>,
})

export function createActivityRepo(db: Db) {
  return {
    async append(e: Omit<ActivityEntry, 'id'>): Promise<ActivityEntry> {
      const r = await db
        .insertInto('activity')
        .values({ created_at: e.createdAt, type: e.type, entity_type: e.entityType, entity_id: e.entityId, actor: e.actor, message: e.message, meta_json: JSON.stringify(e.meta) })
        .returning('id')
        .executeTakeFirstOrThrow()
      return { ...e, id: Number(r.id) }
    },

    /** Newest first, older than `before` (an id) when given. */
    async list(opts: { limit: number; before?: number }): Promise<ActivityEntry[]> {
      let q = db.selectFrom('activity').selectAll()
      if (opts.before !== undefined) q = q.where('id', '<', opts.before)
      return (await q.orderBy('id', 'desc').limit(opts.limit).execute()).map(fromRow)
    },

    /** Oldest first, newer than `after`: what a resumed stream missed. */
    async since(after: number, limit: number): Promise<ActivityEntry[]> {
      return (await db.selectFrom('activity').selectAll().where('id', '>', after).orderBy('id').limit(limit).execute()).map(fromRow)
    },

    /** Drops entries older than `olderThan` and all but the newest `keep`. */
    async prune(olderThan: string, keep: number): Promise<number> {
      const byAge = await db.deleteFrom('activity').where('created_at', '<', olderThan).executeTakeFirst()
      const byCount = await db
        .deleteFrom('activity')
        .where('id', '<=', (eb) => eb.selectFrom('activity').select('id').orderBy('id', 'desc').limit(1).offset(keep))
        .executeTakeFirst()
      return Number(byAge.numDeletedRows) + Number(byCount.numDeletedRows)
    },
  }
}
export type ActivityRepo = ReturnType<typeof createActivityRepo>
