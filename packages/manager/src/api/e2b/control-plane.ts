// E2B's control plane (E2B_API_URL): the sandbox verbs the E2B SDKs call, on our VM service.
// Their contract is E2B's OpenAPI (docs/e2b.md), so these routes stay out of our OpenAPI document.
// Auth is our own: the SDKs send the key in X-API-KEY, the header our keys are read from.
import { Type, type Static } from 'typebox'
import type { FastifyInstance } from 'fastify'
import { requireAuth, type Authenticators } from '../auth.ts'
import { actorLabel } from '../../services/accounts/actor.ts'
import type { E2bSandboxes } from '../../services/e2b/sandboxes.ts'
import { envdAccessTokenFor } from './access-token.ts'
import { installE2bErrorHandler } from './e2b-errors.ts'
import {
  E2B_DEFAULT_TEMPLATE,
  envForEnvVars,
  imageIdForTemplate,
  labelFilterForMetadataQuery,
  labelsForMetadata,
  listedSandboxOf,
  matchesLabelFilter,
  onExpireForAutoPause,
  outboundInternetFor,
  sandboxDetailOf,
  sandboxOf,
  statesForQuery,
  ttlSecondsForTimeout,
} from './sandbox-mapping.ts'

const StringMap = Type.Record(Type.String(), Type.Unknown())
const NewSandbox = Type.Object({
  templateID: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  timeout: Type.Optional(Type.Integer({ minimum: 0 })),
  autoPause: Type.Optional(Type.Boolean()),
  allow_internet_access: Type.Optional(Type.Boolean()),
  metadata: Type.Optional(StringMap),
  envVars: Type.Optional(StringMap),
  secure: Type.Optional(Type.Boolean()),
})
const TimeoutBody = Type.Object({ timeout: Type.Integer({ minimum: 0 }) })
const ConnectBody = Type.Object({ timeout: Type.Optional(Type.Integer({ minimum: 0 })) })
const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) })
const ListQuery = Type.Object({
  metadata: Type.Optional(Type.String({ maxLength: 8192 })),
  state: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  nextToken: Type.Optional(Type.String({ pattern: '^[0-9]{1,9}$' })),
})
const DEFAULT_PAGE = 100
const hide = true

export function e2bControlPlaneRoutes(sandboxes: E2bSandboxes, auth: Authenticators) {
  const token = (id: string) => envdAccessTokenFor(auth.envKey, id)

  return async (app: FastifyInstance) => {
    requireAuth(app, auth)
    installE2bErrorHandler(app)

    const create = async (req: { body: unknown; actor: Parameters<typeof actorLabel>[0] }) => {
      const body = req.body as Static<typeof NewSandbox>
      const templateId = body.templateID ?? E2B_DEFAULT_TEMPLATE
      const s = await sandboxes.create({
        templateId,
        imageId: imageIdForTemplate(templateId),
        ttlSeconds: ttlSecondsForTimeout(body.timeout),
        onExpire: onExpireForAutoPause(body.autoPause),
        metadata: labelsForMetadata(body.metadata),
        envVars: envForEnvVars(body.envVars),
        autoPause: body.autoPause ?? false,
        outboundInternet: outboundInternetFor(body.allow_internet_access),
        createdBy: actorLabel(req.actor),
      })
      return sandboxOf(s, token(s.vm.id))
    }
    for (const url of ['/sandboxes', '/v2/sandboxes']) {
      app.post(url, { schema: { hide, body: NewSandbox } }, async (req, reply) => reply.code(201).send(await create(req)))
    }

    const list = async (query: Static<typeof ListQuery>, onlyRunning: boolean) => {
      const filter = labelFilterForMetadataQuery(query.metadata)
      const states = onlyRunning ? ['running'] : statesForQuery(query.state)
      const all = (await sandboxes.list())
        .map(listedSandboxOf)
        .filter((s) => states.includes(s.state) && matchesLabelFilter(s.metadata, filter))
        .sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.sandboxID.localeCompare(b.sandboxID))
      const from = Number(query.nextToken ?? 0)
      const limit = query.limit ?? DEFAULT_PAGE
      return { page: all.slice(from, from + limit), next: from + limit < all.length ? String(from + limit) : undefined }
    }
    app.get('/v2/sandboxes', { schema: { hide, querystring: ListQuery } }, async (req, reply) => {
      const { page, next } = await list(req.query as Static<typeof ListQuery>, false)
      if (next) reply.header('x-next-token', next)
      return page
    })
    // v1 lists running sandboxes only.
    app.get('/sandboxes', { schema: { hide, querystring: ListQuery } }, async (req, reply) => {
      const { page, next } = await list(req.query as Static<typeof ListQuery>, true)
      if (next) reply.header('x-next-token', next)
      return page
    })

    app.get('/sandboxes/:id', { schema: { hide, params: IdParams } }, async (req) => {
      const { id } = req.params as Static<typeof IdParams>
      return sandboxDetailOf(await sandboxes.get(id), token(id))
    })

    app.delete('/sandboxes/:id', { schema: { hide, params: IdParams } }, async (req, reply) => {
      await sandboxes.kill((req.params as Static<typeof IdParams>).id)
      return reply.code(204).send()
    })

    app.post('/sandboxes/:id/timeout', { schema: { hide, params: IdParams, body: TimeoutBody } }, async (req, reply) => {
      const { timeout } = req.body as Static<typeof TimeoutBody>
      await sandboxes.setTimeout((req.params as Static<typeof IdParams>).id, ttlSecondsForTimeout(timeout))
      return reply.code(204).send()
    })

    app.post('/sandboxes/:id/pause', { schema: { hide, params: IdParams } }, async (req, reply) => {
      await sandboxes.pause((req.params as Static<typeof IdParams>).id)
      return reply.code(204).send()
    })

    for (const url of ['/sandboxes/:id/connect', '/v2/sandboxes/:id/connect']) {
      app.post(url, { schema: { hide, params: IdParams, body: ConnectBody } }, async (req, reply) => {
        const { id } = req.params as Static<typeof IdParams>
        const { timeout } = (req.body ?? {}) as Static<typeof ConnectBody>
        const s = await sandboxes.connect(id, ttlSecondsForTimeout(timeout))
        return reply.code(s.resumed ? 201 : 200).send(sandboxOf(s, token(id)))
      })
    }
  }
}
