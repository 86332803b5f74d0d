// buildApp(): the HTTP surface over already-built services. It never listens (main.ts does),
// so tests can use app.inject() as well as a real socket.
import { EventEmitter } from 'node:events'
import http from 'node:http'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import websocket from '@fastify/websocket'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { installErrorHandler } from './api/error-handler.ts'
import { describeRawBodies } from './api/openapi-raw-bodies.ts'
import { installValidation } from './api/validation.ts'
import { installRequestIds, requestIdOf } from './api/request-id.ts'
import { installHttpMetrics } from './api/http-metrics.ts'
import { installRateLimit } from './api/rate-limit.ts'
import { healthRoutes } from './api/routes/health.ts'
import { metricsRoutes } from './api/routes/metrics.ts'
import { requireAuth } from './api/auth.ts'
import { authRoutes } from './api/routes/auth.ts'
import { adminApiKeyRoutes } from './api/routes/admin-api-keys.ts'
import { adminActivityRoutes } from './api/routes/admin-activity.ts'
import { adminWebhookRoutes } from './api/routes/admin-webhooks.ts'
import { consoleRoutes } from './api/routes/console.ts'
import { buildConsole } from '@rds/console/build'
import { documentCommonErrors } from './api/schemas/common.ts'
import { vmRoutes } from './api/routes/vms.ts'
import { vmExecRoutes } from './api/routes/vm-exec.ts'
import { vmPeerRoutes } from './api/routes/vm-peers.ts'
import { vmFileRoutes } from './api/routes/vm-files.ts'
import { vmFileApiRoutes } from './api/routes/vm-file-api.ts'
import { imageRoutes } from './api/routes/images.ts'
import { snapshotRoutes } from './api/routes/snapshots.ts'
import { templateRoutes } from './api/routes/templates.ts'
import { warmPoolRoutes } from './api/routes/warm-pool.ts'
import { testHookRoutes } from './api/routes/test-hooks.ts'
import { vmProcessRoutes } from './api/routes/vm-processes.ts'
import { ATTACH_MAX_FRAME_BYTES, processAttachRoutes } from './api/routes/process-attach.ts'
import { vmPortRoutes } from './api/routes/vm-ports.ts'
import { createPreviewFront, type PreviewFront } from './api/preview/preview-front.ts'
import type { Services } from './compose.ts'
import { e2bControlPlaneRoutes } from './api/e2b/control-plane.ts'
import { e2bEnvdRoutes, e2bRewriteUrl } from './api/e2b/envd-routes.ts'
import { e2bInterpreterRoutes } from './api/e2b/interpreter-routes.ts'
import { SERVED_PORTS } from './api/e2b/sandbox-header.ts'

export const API_VERSION = '0.1.0'

export async function buildApp(s: Services, o: { apiKey: string; loggerInstance?: FastifyBaseLogger }): Promise<FastifyInstance> {
  // Preview hosts are answered before Fastify sees the request (requests and upgrades alike), so
  // no API route is reachable under a preview's origin and no preview under the API's.
  let front: PreviewFront | undefined
  // @fastify/websocket listens for the upgrades that are not a preview's on this emitter.
  const apiUpgrades = new EventEmitter()
  const app = Fastify({
    ...(o.loggerInstance ? { loggerInstance: o.loggerInstance } : { logger: false }),
    bodyLimit: 256 * 1024,
    // Generous: an exec may legitimately run for MAX_EXEC_TIMEOUT_MS.
    requestTimeout: 0,
    // The caller's X-Request-Id when sane, else a new one (api/request-id.ts); never taken unchecked.
    requestIdHeader: false,
    genReqId: requestIdOf,
    serverFactory: (handler, options) => {
      const opts = options as { http?: http.ServerOptions; keepAliveTimeout?: number; requestTimeout?: number; connectionTimeout?: number }
      const server = http.createServer(opts.http ?? {}, (req, res) => (front?.claims(req) ? front.handle(req, res) : handler(req, res)))
      // What Fastify sets on a server it makes itself (requestTimeout 0: a long upload to a preview or an exec is no timeout).
      server.keepAliveTimeout = opts.keepAliveTimeout ?? 72_000
      server.requestTimeout = opts.requestTimeout ?? 0
      server.setTimeout(opts.connectionTimeout ?? 0)
      server.on('upgrade', (req: http.IncomingMessage, socket, head: Buffer) => (front?.claims(req) ? front.upgrade(req, socket, head) : apiUpgrades.emit('upgrade', req, socket, head)))
      return server
    },
    // E2B's envd requests name their sandbox in headers, not in the path (api/e2b/envd-routes.ts).
    rewriteUrl: (req) =>
      e2bRewriteUrl(req, (host) => {
        const m = s.previews.hosts.parse(host)
        return m.kind === 'preview' && SERVED_PORTS.includes(String(m.address.port)) ? { id: m.address.vmId, port: String(m.address.port) } : undefined
      }),
  }).withTypeProvider<TypeBoxTypeProvider>()
  front = createPreviewFront({ previews: s.previews, envKey: o.apiKey, apiKeys: s.apiKeys, log: app.log })

  installErrorHandler(app, { exposeInternalErrors: s.config.exposeInternalErrors })
  installValidation(app)
  installRequestIds(app)
  installHttpMetrics(app, s.metrics)
  // Before any route: the limiter adds its hook to the routes declared after it.
  await installRateLimit(app, s.config.rateLimitPerMin)
  await app.register(cookie)

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'run-dat-sheesh manager API', version: API_VERSION, description: 'Real microVMs for untrusted code. Every /v1 route needs the X-API-Key header (the env API_KEY or a key minted by the admin), or the admin session cookie (with X-CSRF-Token on requests that change state). With RATE_LIMIT_PER_MIN set, any route but /health, /ready and /auth/login may answer 429 rate_limited (Retry-After). Every answer has an X-Request-Id header, and every error body its requestId.' },
      components: {
        securitySchemes: {
          ApiKeyAuth: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
          AdminSession: { type: 'apiKey', in: 'cookie', name: 'rds_session' },
        },
      },
      security: [{ ApiKeyAuth: [] }, { AdminSession: [] }],
    },
    transform: describeRawBodies,
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  // The original served the same UI under /swagger; its users' bookmarks and scripts keep working.
  await app.register(async (legacy) => legacy.register(swaggerUi, { routePrefix: '/swagger' }))
  await app.register(websocket, { options: { maxPayload: ATTACH_MAX_FRAME_BYTES, server: apiUpgrades as unknown as http.Server } })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  const authenticators = { envKey: o.apiKey, apiKeys: s.apiKeys, sessions: s.sessions }
  await app.register(healthRoutes(s.readiness))
  await app.register(metricsRoutes(s.metrics, { auth: s.config.metricsAuth, authenticators }))
  await app.register(authRoutes(s.sessions))
  await app.register(consoleRoutes(await buildConsole(), s.sessions))
  await app.register(e2bControlPlaneRoutes(s.e2b, authenticators))
  await app.register(e2bEnvdRoutes({ processes: s.vmProcesses, files: s.vmFiles, sandboxes: s.e2b, auth: authenticators, multipartMaxBytes: s.config.uploadMaxBodyBytes }))
  await app.register(e2bInterpreterRoutes({ contexts: s.codeContexts, auth: authenticators }))

  await app.register(
    async (v1) => {
      requireAuth(v1, authenticators)
      v1.addHook('onRoute', documentCommonErrors)
      await v1.register(vmRoutes(s.vms, s.peers))
      await v1.register(vmPeerRoutes(s.vms, s.peers))
      await v1.register(vmExecRoutes(s.vmExec))
      await v1.register(vmFileRoutes(s.vmExec, { uploadMaxBodyBytes: s.config.uploadMaxBodyBytes }))
      await v1.register(vmFileApiRoutes(s.vmFiles))
      await v1.register(vmProcessRoutes(s.vmProcesses))
      await v1.register(processAttachRoutes(s.vmProcesses))
      await v1.register(vmPortRoutes(s.previews))
      await v1.register(imageRoutes(s.images, [s.seeds, s.templates]))
      await v1.register(snapshotRoutes(s.snapshots))
      await v1.register(templateRoutes(s.templates, s.peers, { uploadMaxBodyBytes: s.config.uploadMaxBodyBytes }))
      await v1.register(warmPoolRoutes(s.pool))
      await v1.register(adminApiKeyRoutes(s.apiKeys))
      await v1.register(adminActivityRoutes(s.activity, s.overview))
      await v1.register(adminWebhookRoutes(s.webhooks, s.deliveries))
      if (s.config.testGuestRoot) await v1.register(testHookRoutes(s.vmExec))
    },
    { prefix: '/v1' },
  )
  return app
}
