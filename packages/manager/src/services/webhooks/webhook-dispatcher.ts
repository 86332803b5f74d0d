// Delivers activity to webhooks. Each entry a webhook wants is queued in the database first
// (so nothing is lost or blocked by a restart, and the API call that caused it never waits),
// then POSTed, signed, by a worker with a bound on deliveries in flight. A failure or a timeout
// is retried with exponential backoff until WEBHOOK_MAX_ATTEMPTS; every attempt's outcome is in
// the delivery log. Redirects are not followed: the admin named the URL that gets the events.
import type { FastifyBaseLogger } from 'fastify'
import type { DeliveryRecord, WebhooksRepo } from '../../store/webhooks-repo.ts'
import type { ActivityEntry, ActivityLog } from '../activity/activity-log.ts'
import type { SecretSealer } from './webhook-secret.ts'
import { signature } from './webhook-secret.ts'

export interface DeliveryConfig {
  timeoutMs: number
  maxAttempts: number
  retryBaseMs: number
  /** Finished deliveries are kept this long in the log. */
  retentionDays: number
}

const IN_FLIGHT_MAX = 4
const BACKOFF_MAX_MS = 60 * 60_000
const ERROR_TEXT_MAX = 500
const PRUNE_EVERY_MS = 60 * 60_000

/** The body of a delivery: the original's shape, plus who caused the event. */
export const deliveryPayload = (e: Pick<ActivityEntry, 'id' | 'type' | 'createdAt' | 'entityType' | 'entityId' | 'actor' | 'message' | 'meta'>) =>
  JSON.stringify({ id: String(e.id), type: e.type, createdAt: e.createdAt, entityType: e.entityType, entityId: e.entityId, actor: e.actor, message: e.message, meta: e.meta, source: { service: 'run-dat-sheesh-manager' } })

const wants = (types: string[], type: string) => types.includes('*') || types.includes(type)

export function createWebhookDispatcher(deps: { repo: WebhooksRepo; sealer: SecretSealer; activity: ActivityLog; config: DeliveryConfig; log: FastifyBaseLogger }) {
  const { repo, config, log } = deps
  const abort = new AbortController()
  let unsubscribe: (() => void) | undefined
  let timer: NodeJS.Timeout | undefined
  let pruneTimer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined
  let again = false
  let closed = false

  async function enqueueFor(e: ActivityEntry): Promise<void> {
    const now = new Date().toISOString()
    for (const h of await repo.list()) {
      if (h.enabled && wants(h.eventTypes, e.type)) await repo.enqueue(h.id, e.type, deliveryPayload(e), now)
    }
    kick()
  }

  async function attempt(d: DeliveryRecord): Promise<void> {
    const hook = await repo.get(d.webhookId)
    const attempts = d.attempts + 1
    const finished = (status: 'delivered' | 'failed', lastStatus: number | null, lastError: string | null) =>
      repo.recordAttempt(d.id, { status, attempts, nextAttemptAt: null, lastStatus, lastError, finishedAt: new Date().toISOString() })
    if (!hook) return
    if (!hook.enabled) return void (await finished('failed', null, 'webhook disabled before delivery'))
    let status: number | null = null
    let error: string | null = null
    try {
      const t = Math.floor(Date.now() / 1000)
      const res = await fetch(hook.url, {
        method: 'POST',
        redirect: 'manual',
        signal: AbortSignal.any([abort.signal, AbortSignal.timeout(config.timeoutMs)]),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'run-dat-sheesh-webhooks',
          'x-rds-event': d.eventType,
          'x-rds-delivery': String(d.id),
          'x-rds-signature': signature(deps.sealer.open(hook.id, hook.secretSealed), t, d.payload),
        },
        body: d.payload,
      })
      status = res.status
      // The receiver's answer is not ours to keep; only its status counts.
      await res.body?.cancel().catch(() => {})
      if (res.ok) return void (await finished('delivered', status, null))
      error = `HTTP ${res.status}`
    } catch (err) {
      if (closed) return
      const e = err as Error
      error = (e.name === 'TimeoutError' ? `no answer within ${config.timeoutMs} ms` : `${e.message}${e.cause ? `: ${(e.cause as Error).message}` : ''}`).slice(0, ERROR_TEXT_MAX)
    }
    if (attempts >= config.maxAttempts) return void (await finished('failed', status, error))
    const wait = Math.min(BACKOFF_MAX_MS, config.retryBaseMs * 2 ** (attempts - 1))
    await repo.recordAttempt(d.id, { status: 'pending', attempts, nextAttemptAt: new Date(Date.now() + wait).toISOString(), lastStatus: status, lastError: error, finishedAt: null })
  }

  async function drain(): Promise<void> {
    for (;;) {
      const due = await repo.due(new Date().toISOString(), IN_FLIGHT_MAX)
      if (due.length === 0 || closed) break
      await Promise.all(due.map((d) => attempt(d).catch((err: Error) => log.error({ deliveryId: d.id, err: err.message }, 'webhook delivery failed'))))
    }
    const next = await repo.nextDue()
    clearTimeout(timer)
    if (next && !closed) timer = setTimeout(kick, Math.max(0, Date.parse(next) - Date.now()) + 10)
  }

  /** Runs the worker now (or once more after the current run). */
  function kick(): void {
    if (closed) return
    if (running) {
      again = true
      return
    }
    running = drain()
      .catch((err: Error) => log.error({ err: err.message }, 'webhook worker failed'))
      .finally(() => {
        running = undefined
        if (again) {
          again = false
          kick()
        }
      })
  }

  async function prune(): Promise<void> {
    await repo.prune(new Date(Date.now() - config.retentionDays * 86_400_000).toISOString())
  }

  return {
    /** Follows the activity log and resumes deliveries a previous run left queued. */
    start(): void {
      unsubscribe = deps.activity.subscribe((e) => void enqueueFor(e).catch((err: Error) => log.error({ err: err.message }, 'webhook deliveries not queued')))
      kick()
      void prune().catch(() => {})
      pruneTimer = setInterval(() => void prune().catch(() => {}), PRUNE_EVERY_MS)
      pruneTimer.unref()
    },

    /** Queues a `webhook.test` delivery to one webhook, whatever its event types. */
    async sendTest(webhookId: string, actor: string): Promise<void> {
      const now = new Date().toISOString()
      await repo.enqueue(webhookId, 'webhook.test', deliveryPayload({ id: 0, type: 'webhook.test', createdAt: now, entityType: 'webhook', entityId: webhookId, actor, message: 'Test event', meta: {} }), now)
      kick()
    },

    async close(): Promise<void> {
      closed = true
      unsubscribe?.()
      clearTimeout(timer)
      clearInterval(pruneTimer)
      abort.abort()
      await running
    },
  }
}
export type WebhookDispatcher = ReturnType<typeof createWebhookDispatcher>
