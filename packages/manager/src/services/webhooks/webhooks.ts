// Webhooks, managed by an admin: which URL gets which activity types. The signing secret is
// made here, shown once in the create answer and stored sealed.
import crypto from 'node:crypto'
import { Errors } from '../../errors.ts'
import type { DeliveryRecord, WebhookRecord, WebhooksRepo } from '../../store/webhooks-repo.ts'

export type { DeliveryRecord, WebhookRecord }
import type { RecordActivity } from '../activity/activity-log.ts'
import { newWebhookSecret, type SecretSealer } from './webhook-secret.ts'

export interface WebhookInput {
  name?: string
  url?: string
  enabled?: boolean
  eventTypes?: string[]
}

/** An activity type (`vm.created`), or `*` for every type. */
const EVENT_TYPE = /^(\*|[A-Za-z]+\.[a-z_]+)$/

function checked(input: WebhookInput, partial: boolean): WebhookInput {
  const out: WebhookInput = {}
  if (input.name !== undefined || !partial) {
    const name = (input.name ?? '').trim()
    if (!name) throw Errors.invalidWebhook(partial ? 'name cannot be empty' : 'name is required')
    out.name = name
  }
  if (input.url !== undefined || !partial) {
    let url: URL
    try {
      url = new URL(input.url ?? '')
    } catch {
      throw Errors.invalidWebhook('url must be a valid URL')
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw Errors.invalidWebhook('url must be an http:// or https:// URL')
    if (url.username || url.password) throw Errors.invalidWebhook('url must not hold credentials: the signature authenticates deliveries')
    out.url = url.toString()
  }
  if (input.eventTypes !== undefined || !partial) {
    const types = input.eventTypes ?? []
    if (types.length === 0 || !types.every((t) => EVENT_TYPE.test(t))) throw Errors.invalidWebhook('eventTypes must be a non-empty array of event types (e.g. "vm.created", or "*" for all)')
    out.eventTypes = [...new Set(types)]
  }
  if (input.enabled !== undefined) out.enabled = input.enabled
  return out
}

export function createWebhooks(deps: { repo: WebhooksRepo; sealer: SecretSealer; activity: RecordActivity }) {
  const { repo } = deps
  const mustGet = async (id: string) => {
    const h = await repo.get(id)
    if (!h) throw Errors.webhookNotFound()
    return h
  }
  const about = (h: WebhookRecord) => ({ entityType: 'webhook', entityId: h.id, meta: { name: h.name, eventTypes: h.eventTypes, enabled: h.enabled } })

  return {
    async create(input: WebhookInput, createdBy: string): Promise<{ webhook: WebhookRecord; secret: string }> {
      const v = checked(input, false)
      const webhook: WebhookRecord = { id: `wh-${crypto.randomUUID()}`, name: v.name!, url: v.url!, enabled: v.enabled ?? true, eventTypes: v.eventTypes!, createdAt: new Date().toISOString(), createdBy }
      const secret = newWebhookSecret()
      await repo.insert(webhook, deps.sealer.seal(webhook.id, secret))
      deps.activity({ type: 'webhook.created', message: `Webhook ${webhook.name} created`, ...about(webhook) })
      return { webhook, secret }
    },

    list: () => repo.list(),

    async update(id: string, input: WebhookInput): Promise<WebhookRecord> {
      await mustGet(id)
      await repo.update(id, checked(input, true))
      const { secretSealed: _, ...webhook } = await mustGet(id)
      deps.activity({ type: 'webhook.updated', message: `Webhook ${webhook.name} changed`, ...about(webhook) })
      return webhook
    },

    async remove(id: string): Promise<void> {
      const h = await mustGet(id)
      await repo.remove(id)
      deps.activity({ type: 'webhook.deleted', message: `Webhook ${h.name} deleted`, ...about(h) })
    },

    async deliveries(id: string, limit: number) {
      await mustGet(id)
      return repo.deliveries(id, limit)
    },

    mustGet,
  }
}
export type Webhooks = ReturnType<typeof createWebhooks>
