// Webhooks: an admin session only (a webhook sends every matching event to a URL of the admin's
// choosing, so an API key must not be able to point one elsewhere).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { actorLabel } from '../../services/accounts/actor.ts'
import type { WebhookDispatcher } from '../../services/webhooks/webhook-dispatcher.ts'
import type { Webhooks } from '../../services/webhooks/webhooks.ts'
import { requireSession } from '../auth.ts'
import { errorResponses, IdParams } from '../schemas/common.ts'
import { CreatedWebhook, CreateWebhookBody, DeliveriesQuery, DeliveryPublic, PatchWebhookBody, toDeliveryPublic, WebhookPublic } from '../schemas/webhooks.ts'

const tags = ['admin']

export const adminWebhookRoutes = (webhooks: Webhooks, deliveries: WebhookDispatcher): FastifyPluginAsyncTypebox => async (app) => {
  app.addHook('preHandler', async (req) => void requireSession(req))

  app.post('/admin/webhooks', { bodyLimit: 64 * 1024, schema: { tags, summary: 'Add a webhook (admin session); its signing secret is in this answer only', body: CreateWebhookBody, response: { 201: CreatedWebhook, ...errorResponses(403) } } }, async (req, reply) => {
    const { webhook, secret } = await webhooks.create(req.body, actorLabel(req.actor))
    return reply.code(201).send({ ...webhook, secret })
  })
  app.get('/admin/webhooks', { schema: { tags, summary: 'Webhooks (admin session; never their secrets)', response: { 200: Type.Array(WebhookPublic), ...errorResponses(403) } } }, async () => webhooks.list())
  app.patch('/admin/webhooks/:id', { bodyLimit: 64 * 1024, schema: { tags, summary: 'Change a webhook (admin session)', params: IdParams, body: PatchWebhookBody, response: { 200: WebhookPublic, ...errorResponses(403, 404) } } }, async (req) =>
    webhooks.update(req.params.id, req.body),
  )
  app.delete('/admin/webhooks/:id', { schema: { tags, summary: 'Delete a webhook and its delivery log (admin session)', params: IdParams, response: { 204: Type.Null(), ...errorResponses(403, 404) } } }, async (req, reply) => {
    await webhooks.remove(req.params.id)
    return reply.code(204).send(null)
  })
  app.get('/admin/webhooks/:id/deliveries', { schema: { tags, summary: 'A webhook\'s deliveries, newest first (admin session)', params: IdParams, querystring: DeliveriesQuery, response: { 200: Type.Array(DeliveryPublic), ...errorResponses(403, 404) } } }, async (req) =>
    (await webhooks.deliveries(req.params.id, Math.min(200, req.query.limit ?? 50))).map(toDeliveryPublic),
  )
  app.post('/admin/webhooks/:id/test', { schema: { tags, summary: 'Queue a webhook.test delivery to this webhook (admin session)', params: IdParams, response: { 202: Type.Object({ queued: Type.Boolean() }), ...errorResponses(403, 404) } } }, async (req, reply) => {
    await webhooks.mustGet(req.params.id)
    await deliveries.sendTest(req.params.id, actorLabel(req.actor))
    return reply.code(202).send({ queued: true })
  })
}
