// envd, E2B's in-sandbox API, served by the manager on its own port. The SDKs (with
// E2B_SANDBOX_URL set to us) send every envd request to the same URL, naming the sandbox and
// port in E2b-Sandbox-Id / E2b-Sandbox-Port. e2bRewriteUrl() sends such requests, before
// Fastify's routing, under ENVD_PREFIX (port 49983), INTERPRETER_PREFIX (49999, the code
// interpreter: interpreter-routes.ts) or PORT_PREFIX (any other port), so
// they never reach our own routes, whatever their path. Every request under these prefixes is
// authorized for its sandbox first: its envdAccessToken (X-Access-Token) or one of our API keys.
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { connectNodeAdapter } from '@connectrpc/connect-node'
import type { Authenticators } from '../auth.ts'
import { Errors } from '../../errors.ts'
import type { E2bSandboxes } from '../../services/e2b/sandboxes.ts'
import type { VmFilesService } from '../../services/vm-files.ts'
import type { VmProcessService } from '../../services/vm-processes.ts'
import { e2bErrorBody } from './e2b-errors.ts'
import { envdFilesystemService } from './envd-filesystem.ts'
import { envdHttpRoutes } from './envd-http.ts'
import { envdProcessService } from './envd-process.ts'
import { authorizeSandbox, sandboxIdOfRequest } from './sandbox-auth.ts'
import { ENVD_PORT, INTERPRETER_PORT, SANDBOX_ID_HEADER, SANDBOX_PORT_HEADER } from './sandbox-header.ts'

/** Internal path prefixes only e2bRewriteUrl() leads to (a request naming them itself has no sandbox header and is refused). */
export const ENVD_PREFIX = '/__e2b/envd'
export const PORT_PREFIX = '/__e2b/port'
export const INTERPRETER_PREFIX = '/__e2b/interpreter'
const RPC_READ_MAX_BYTES = 8 * 1024 * 1024

const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v)

const PREFIX_OF: Record<string, string> = { [ENVD_PORT]: ENVD_PREFIX, [INTERPRETER_PORT]: INTERPRETER_PREFIX }

/**
 * Fastify's rewriteUrl: requests for a sandbox go to the E2B layer, all others stay as they are.
 * `servedHost` reads the SDKs' other addressing, a Host `<port>-<sandbox id>.<domain>` for a port
 * the manager serves (the preview front door leaves those to us): it becomes the headers the E2B
 * routes read the sandbox from.
 */
export function e2bRewriteUrl(req: { url?: string; headers: IncomingHttpHeaders }, servedHost?: (host: string | undefined) => { id: string; port: string } | undefined): string {
  const url = req.url ?? '/'
  if (!one(req.headers[SANDBOX_ID_HEADER])) {
    const target = servedHost?.(one(req.headers.host))
    const prefix = target && PREFIX_OF[target.port]
    if (!target || !prefix) return url
    req.headers[SANDBOX_ID_HEADER] = target.id
    req.headers[SANDBOX_PORT_HEADER] = target.port
    return `${prefix}${url}`
  }
  return `${PREFIX_OF[one(req.headers[SANDBOX_PORT_HEADER]) ?? ''] ?? PORT_PREFIX}${url}`
}

/**
 * Any other port of a sandbox is answered before Fastify, by the preview front door
 * (api/preview/preview-front.ts), which proxies it into the VM. What still arrives here named no
 * usable port (E2b-Sandbox-Port missing): a clear 502.
 */
export async function forwardToGuestPort(_req: FastifyRequest, _reply: FastifyReply, _sandboxId: string, port: string): Promise<never> {
  throw Errors.e2bPortUnavailable(port)
}

export function e2bEnvdRoutes(deps: { processes: VmProcessService; files: VmFilesService; sandboxes: E2bSandboxes; auth: Authenticators; multipartMaxBytes: number }) {
  const processRoutes = envdProcessService(deps.processes, deps.sandboxes)
  const filesystemRoutes = envdFilesystemService(deps.files)
  const rpc = connectNodeAdapter({
    requestPathPrefix: ENVD_PREFIX,
    // Connect reads a whole unary message before the handler runs (4 GiB by default): a sandbox's
    // token must not let its holder fill the manager's memory. Stdin and file bytes fit well within.
    readMaxBytes: RPC_READ_MAX_BYTES,
    routes: (router) => {
      processRoutes(router)
      filesystemRoutes(router)
    },
  })

  return async (app: FastifyInstance) => {
    // Bodies are read by the handlers (Connect's codec, streamed uploads), never by Fastify.
    app.removeAllContentTypeParsers()
    app.addContentTypeParser('*', (_req, _payload, done) => done(null))
    app.setErrorHandler((err: Error & { status?: number; code?: string }, req, reply) => {
      const status = typeof err.status === 'number' ? err.status : 500
      if (status >= 500) req.log.error({ err }, 'e2b route failed')
      return reply.code(status).send(e2bErrorBody(status, status >= 500 && status !== 502 ? 'Internal Server Error' : err.message, err.code ?? 'internal'))
    })
    app.addHook('onRequest', async (req) => authorizeSandbox(req, deps.auth))

    await app.register(
      async (envd) => {
        for (const service of ['process.Process', 'filesystem.Filesystem']) {
          envd.post(`/${service}/:method`, { schema: { hide: true } }, (req, reply) => {
            reply.hijack()
            rpc(req.raw, reply.raw)
          })
        }
        await envd.register(envdHttpRoutes({ files: deps.files, sandboxes: deps.sandboxes, sandboxIdOf: sandboxIdOfRequest, multipartMaxBytes: deps.multipartMaxBytes }))
      },
      { prefix: ENVD_PREFIX },
    )

    app.all(`${PORT_PREFIX}/*`, { schema: { hide: true } }, async (req, reply) => forwardToGuestPort(req, reply, sandboxIdOfRequest(req), one(req.headers[SANDBOX_PORT_HEADER]) ?? ''))
  }
}
