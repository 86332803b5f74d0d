// API keys minted in the console. Only an admin session may mint, list or revoke them: a key
// that could mint keys would make every leaked key a permanent one.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { actorLabel } from '../../services/accounts/actor.ts'
import type { ApiKeys } from '../../services/accounts/api-keys.ts'
import { requireSession } from '../auth.ts'
import { ApiKeyPublic, MintApiKeyBody, MintedApiKey } from '../schemas/accounts.ts'
import { errorResponses, IdParams } from '../schemas/common.ts'

const tags = ['admin']

export const adminApiKeyRoutes = (keys: ApiKeys): FastifyPluginAsyncTypebox => async (app) => {
  app.post('/admin/api-keys', { bodyLimit: 16 * 1024, schema: { tags, summary: 'Mint an API key (admin session only); the key is in this answer only', body: MintApiKeyBody, response: { 201: MintedApiKey, ...errorResponses(403) } } }, async (req, reply) => {
    const admin = requireSession(req)
    const { key, apiKey } = await keys.mint(req.body, actorLabel(admin))
    return reply.code(201).send({ ...key, apiKey })
  })
  app.get('/admin/api-keys', { schema: { tags, summary: 'API keys (never their secrets; admin session only)', response: { 200: Type.Array(ApiKeyPublic), ...errorResponses(403) } } }, async (req) => {
    requireSession(req)
    return keys.list()
  })
  app.post('/admin/api-keys/:id/revoke', { schema: { tags, summary: 'Revoke an API key at once (admin session only)', params: IdParams, response: { 200: ApiKeyPublic, ...errorResponses(403, 404) } } }, async (req) => {
    requireSession(req)
    return keys.revoke(req.params.id)
  })
}
