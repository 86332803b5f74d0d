// Persistence of webhooks and of their delivery queue and log.
import type { Selectable } from 'kysely'
import type { Db } from './db.ts'
import type { WebhookDeliveriesTable, WebhooksTable } from './schema.ts'

export interface WebhookRecord {
  id: string
  name: string
  url: string
  enabled: boolean
  eventTypes: string[]
  createdAt: string
  createdBy: string | null
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed'

export interface DeliveryRecord {
  id: number
  webhookId: string
  eventType: string
  payload: string
  status: DeliveryStatus
  attempts: number
  nextAttemptAt: string | null
  lastStatus: number | null
  lastError: string | null
  createdAt: string
  finishedAt: string | null
}

const hookFromRow = (r: Selectable<WebhooksTable>): WebhookRecord => ({
  id: r.id,
  name: r.name,
  url: r.url,
  enabled: Boolean(r.enabled),
  eventTypes: JSON.parse(r.event_types) as string[],
  createdAt: r.created_at,
  createdBy: r.created_by,
})

const deliveryFromRow = (r: Selectable<WebhookDeliveriesTable>): DeliveryRecord => ({
  id: Number(r.id),
  webhookId: r.webhook_id,
  eventType: r.event_type,
  payload: r.payload_json,
  status: r.status as DeliveryStatus,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  lastStatus: r.last_status,
  lastError: r.last_error,
  createdAt: r.created_at,
  finishedAt: r.finished_at,
})

export function createWebhooksRepo(db: Db) {
  return {
    async insert(h: WebhookRecord, secretSealed: string): Promise<void> {
      await db
        .insertInto('webhooks')
        .values({ id: h.id, name: h.name, url: h.url, enabled: h.enabled ? 1 : 0, event_types: JSON.stringify(h.eventTypes), secret_sealed: secretSealed, created_at: h.createdAt, created_by: h.createdBy })
        .execute()
    },
    async list(): Promise<WebhookRecord[]> {
      return (await db.selectFrom('webhooks').selectAll().orderBy('created_at').orderBy('id').execute()).map(hookFromRow)
    },
    async get(id: string): Promise<(WebhookRecord & { secretSealed: string }) | undefined> {
      const r = await db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst()
      return r && { ...hookFromRow(r), secretSealed: r.secret_sealed }
    },
    async update(id: string, patch: Partial<Pick<WebhookRecord, 'name' | 'url' | 'enabled' | 'eventTypes'>>): Promise<void> {
      const set: Partial<WebhooksTable> = {}
      if (patch.name !== undefined) set.name = patch.name
      if (patch.url !== undefined) set.url = patch.url
      if (patch.enabled !== undefined) set.enabled = patch.enabled ? 1 : 0
      if (patch.eventTypes !== undefined) set.event_types = JSON.stringify(patch.eventTypes)
      if (Object.keys(set).length) await db.updateTable('webhooks').set(set).where('id', '=', id).execute()
    },
    async remove(id: string): Promise<void> {
      await db.transaction().execute(async (tx) => {
        await tx.deleteFrom('webhook_deliveries').where('webhook_id', '=', id).execute()
        await tx.deleteFrom('webhooks').where('id', '=', id).execute()
      })
    },

    async enqueue(webhookId: string, eventType: string, payload: string, at: string): Promise<void> {
      await db.insertInto('webhook_deliveries').values({ webhook_id: webhookId, event_type: eventType, payload_json: payload, status: 'pending', attempts: 0, next_attempt_at: at, created_at: at }).execute()
    },
    /** Pending deliveries due by `now`, oldest first. */
    async due(now: string, limit: number): Promise<DeliveryRecord[]> {
      return (await db.selectFrom('webhook_deliveries').selectAll().where('status', '=', 'pending').where('next_attempt_at', '<=', now).orderBy('next_attempt_at').orderBy('id').limit(limit).execute()).map(deliveryFromRow)
    },
    /** When the next pending delivery is due, if any. */
    async nextDue(): Promise<string | undefined> {
      const r = await db.selectFrom('webhook_deliveries').select('next_attempt_at').where('status', '=', 'pending').orderBy('next_attempt_at').limit(1).executeTakeFirst()
      return r?.next_attempt_at ?? undefined
    },
    async recordAttempt(id: number, outcome: { status: DeliveryStatus; attempts: number; nextAttemptAt: string | null; lastStatus: number | null; lastError: string | null; finishedAt: string | null }): Promise<void> {
      await db
        .updateTable('webhook_deliveries')
        .set({ status: outcome.status, attempts: outcome.attempts, next_attempt_at: outcome.nextAttemptAt, last_status: outcome.lastStatus, last_error: outcome.lastError, finished_at: outcome.finishedAt })
        .where('id', '=', id)
        .execute()
    },
    async deliveries(webhookId: string, limit: number): Promise<DeliveryRecord[]> {
      return (await db.selectFrom('webhook_deliveries').selectAll().where('webhook_id', '=', webhookId).orderBy('id', 'desc').limit(limit).execute()).map(deliveryFromRow)
    },
    /** Finished deliveries older than `before`. */
    async prune(before: string): Promise<void> {
      await db.deleteFrom('webhook_deliveries').where('status', '!=', 'pending').where('created_at', '<', before).execute()
    },
  }
}
export type WebhooksRepo = ReturnType<typeof createWebhooksRepo>
