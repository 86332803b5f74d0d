import { Type, type Static } from 'typebox'
import type { DeliveryRecord } from '../../services/webhooks/webhooks.ts'

export const WebhookPublic = Type.Object({
  id: Type.String(),
  name: Type.String(),
  url: Type.String(),
  enabled: Type.Boolean(),
  eventTypes: Type.Array(Type.String(), { description: 'Activity types delivered (see GET /v1/admin/activity); "*" for all.' }),
  createdAt: Type.String({ format: 'date-time' }),
  createdBy: Type.Union([Type.String(), Type.Null()]),
})

export const CreatedWebhook = Type.Object({
  ...WebhookPublic.properties,
  secret: Type.String({ description: 'The signing secret, shown this once. Each delivery carries X-RDS-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>.' }),
})

const fields = {
  name: Type.String({ maxLength: 200 }),
  url: Type.String({ maxLength: 2048 }),
  enabled: Type.Boolean(),
  eventTypes: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 100 }),
}
export const CreateWebhookBody = Type.Object({ name: fields.name, url: fields.url, enabled: Type.Optional(fields.enabled), eventTypes: fields.eventTypes }, { additionalProperties: false })
export const PatchWebhookBody = Type.Partial(Type.Object(fields), { additionalProperties: false })
export type PatchWebhookBody = Static<typeof PatchWebhookBody>

export const DeliveryPublic = Type.Object({
  id: Type.String(),
  eventType: Type.String(),
  status: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')]),
  attempts: Type.Integer(),
  nextAttemptAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'When a pending delivery is tried again.' }),
  lastStatus: Type.Union([Type.Integer(), Type.Null()], { description: 'HTTP status of the last attempt, if it got one.' }),
  lastError: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  payload: Type.String({ description: 'The exact body sent (and signed).' }),
})

export const toDeliveryPublic = (d: DeliveryRecord) => ({
  id: String(d.id),
  eventType: d.eventType,
  status: d.status,
  attempts: d.attempts,
  nextAttemptAt: d.nextAttemptAt,
  lastStatus: d.lastStatus,
  lastError: d.lastError,
  createdAt: d.createdAt,
  finishedAt: d.finishedAt,
  payload: d.payload,
})

export const DeliveriesQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, description: 'Default 50, at most 200.' })) })
