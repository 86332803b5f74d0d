// The front door for preview hosts (`<port>-<vmId>.<PREVIEW_DOMAIN>`), in front of Fastify on the
// manager's one server: a request whose Host names a preview never reaches the API's routes, and
// no other request reaches the proxy. Access, in order: the url's token (exchanged for a cookie
// scoped to this host, then a redirect that drops it from the address bar), that cookie, an
// X-API-Key, or a port made public. Then the request goes to the VM the host names, through
// upstream-proxy.ts.
//
// E2B's SDKs reach a sandbox's ports the other way: the request names the sandbox and port in
// E2b-Sandbox-Id / E2b-Sandbox-Port (any path, any Host). Those for a port other than envd's are
// answered here too, authorized by the sandbox's envd access token (X-Access-Token), an API key,
// or a public port; envd's port and the code interpreter's stay with the E2B routes behind Fastify (api/e2b).
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { ApiError, Errors } from '../../errors.ts'
import type { ApiKeys } from '../../services/accounts/api-keys.ts'
import type { PreviewAddress } from '../../services/previews/preview-host.ts'
import { PREVIEW_TOKEN_PARAM, type Previews } from '../../services/previews/previews.ts'
import { keyMatches } from '../auth.ts'
import { envdAccessTokenMatches } from '../e2b/access-token.ts'
import { SANDBOX_ID_HEADER, SANDBOX_PORT_HEADER, SERVED_PORTS } from '../e2b/sandbox-header.ts'
import { forwardHttp, forwardUpgrade, writeRawResponse, type ForwardOptions } from './upstream-proxy.ts'

export const PREVIEW_COOKIE = 'rds_preview'

export interface PreviewFrontDeps {
  previews: Previews
  envKey: string
  apiKeys: ApiKeys
  log: { warn: (obj: object, msg: string) => void }
}

type Access = { kind: 'forward' } | { kind: 'redirect'; location: string; cookie: string }

function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=')
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim()
  }
  return undefined
}

const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v)

function wantsHtml(req: IncomingMessage): boolean {
  const accept = one(req.headers.accept) ?? ''
  return accept.includes('text/html')
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/** A small page for people, JSON for programs; the same code either way. */
function errorBody(req: IncomingMessage, err: ApiError): { type: string; body: string } {
  if (wantsHtml(req)) {
    const page = `<!doctype html><meta charset="utf-8"><title>${err.status} ${escapeHtml(err.code)}</title><body style="font-family:sans-serif;max-width:40em;margin:4em auto"><h1>Preview: ${escapeHtml(err.code)}</h1><p>${escapeHtml(err.message)}</p></body>`
    return { type: 'text/html; charset=utf-8', body: page }
  }
  return { type: 'application/json; charset=utf-8', body: JSON.stringify({ code: err.code, message: err.message, ...err.details }) }
}

/** Where a request is for: a preview host, or E2B's headers naming a sandbox port other than envd's. */
type Addressed = { via: 'host' | 'e2b'; match: ReturnType<Previews['hosts']['parse']> }

function e2bAddress(req: IncomingMessage): Addressed | undefined {
  const vmId = one(req.headers[SANDBOX_ID_HEADER])
  const port = one(req.headers[SANDBOX_PORT_HEADER])
  if (!vmId || port === undefined || SERVED_PORTS.includes(port)) return undefined
  const n = Number(port)
  if (!/^\d{1,5}$/.test(port) || n < 1 || n > 65535) return { via: 'e2b', match: { kind: 'bad-port', vmId } }
  return { via: 'e2b', match: { kind: 'preview', address: { vmId, port: n } } }
}

const asApiError = (err: unknown) => (err instanceof ApiError ? err : new ApiError(500, 'internal_error', 'Internal Server Error'))

export function createPreviewFront(d: PreviewFrontDeps) {
  const { previews } = d
  const secure = previews.config.scheme === 'https'

  async function apiKeyValid(given: string): Promise<boolean> {
    if (keyMatches(given, d.envKey)) return true
    return (await d.apiKeys.verify(given)) !== undefined
  }

  function addressOf(req: IncomingMessage): Addressed {
    return e2bAddress(req) ?? { via: 'host', match: previews.hosts.parse(one(req.headers.host)) }
  }

  /** The last ways in, for both kinds of request: an API key (a wrong one is refused), or a public port. */
  async function keyOrPublic(req: IncomingMessage, a: PreviewAddress): Promise<Access> {
    const key = one(req.headers['x-api-key'])
    if (key !== undefined) {
      if (await apiKeyValid(key)) return { kind: 'forward' }
      throw Errors.unauthorized()
    }
    if (await previews.isPublic(a)) return { kind: 'forward' }
    throw Errors.previewUnauthorized()
  }

  /** An E2B client's request: the sandbox's envd token, an API key, or a public port. */
  async function authorizeE2b(req: IncomingMessage, a: PreviewAddress): Promise<Access> {
    if (envdAccessTokenMatches(d.envKey, a.vmId, one(req.headers['x-access-token']))) return { kind: 'forward' }
    return keyOrPublic(req, a)
  }

  /** Who may pass, or the error that says why not. `url` is the request's parsed address. */
  async function authorize(req: IncomingMessage, a: PreviewAddress, url: URL, upgrade: boolean): Promise<Access> {
    const token = url.searchParams.get(PREVIEW_TOKEN_PARAM)
    if (token !== null) {
      const check = previews.checkToken(token, a)
      if (check === 'expired') throw Errors.previewTokenExpired()
      if (check !== 'ok') throw Errors.previewTokenInvalid()
      // A browser's navigation: the token becomes this host's cookie and leaves the address bar
      // (and so the history, the Referer of the app's own links and what the app's scripts see).
      if ((req.method === 'GET' || req.method === 'HEAD') && !upgrade) {
        url.searchParams.delete(PREVIEW_TOKEN_PARAM)
        const attrs = [`${PREVIEW_COOKIE}=${token}`, 'Path=/', `Max-Age=${previews.cookieMaxAge(token)}`, 'HttpOnly', 'SameSite=Lax', ...(secure ? ['Secure'] : [])]
        return { kind: 'redirect', location: `${url.pathname}${url.search}`, cookie: attrs.join('; ') }
      }
      return { kind: 'forward' }
    }
    if (previews.checkToken(readCookie(one(req.headers.cookie), PREVIEW_COOKIE), a) === 'ok') return { kind: 'forward' }
    return keyOrPublic(req, a)
  }

  /** The request's target and how to forward it, or an ApiError. */
  async function prepare(req: IncomingMessage, upgrade: boolean, fail: (err: ApiError) => void): Promise<{ access: Access; options: ForwardOptions } | undefined> {
    const { via, match } = addressOf(req)
    if (match.kind === 'bad-port') throw Errors.invalidPreviewPort()
    if (match.kind !== 'preview') throw Errors.notFound()
    const a = match.address
    const url = new URL(req.url ?? '/', 'http://preview.invalid')
    const access = via === 'e2b' ? await authorizeE2b(req, a) : await authorize(req, a, url, upgrade)
    if (access.kind === 'redirect') return { access, options: undefined as never }
    const target = await previews.target(a)
    url.searchParams.delete(PREVIEW_TOKEN_PARAM)
    const host = previews.hosts.name(a)
    return {
      access,
      options: {
        target,
        path: `${url.pathname}${url.search}`,
        cookieHost: host,
        client: { remoteAddress: req.socket.remoteAddress, proto: previews.config.scheme, host: one(req.headers.host) ?? host },
        unreachable: (reason) => fail(Errors.previewUpstreamUnreachable(a.port, reason)),
      },
    }
  }

  function sendError(req: IncomingMessage, res: ServerResponse, err: ApiError): void {
    if (res.headersSent) return void res.destroy()
    const { type, body } = errorBody(req, err)
    res.writeHead(err.status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' })
    res.end(req.method === 'HEAD' ? undefined : body)
  }

  function sendRawError(req: IncomingMessage, socket: Duplex, err: ApiError): void {
    if (socket.destroyed) return
    const { type, body } = errorBody(req, err)
    writeRawResponse(socket, err.status, { 'content-type': type, 'content-length': Buffer.byteLength(body), connection: 'close' }, body)
    socket.end()
  }

  return {
    /** Whether the Host names a preview (or looks like one): then the request is answered here. */
    claims: (req: IncomingMessage) => {
      const { via, match } = addressOf(req)
      // envd's and the code interpreter's ports under a preview host are E2B's APIs, served by the E2B routes behind Fastify.
      if (via === 'host' && match.kind === 'preview' && SERVED_PORTS.includes(String(match.address.port))) return false
      return match.kind !== 'other'
    },

    handle(req: IncomingMessage, res: ServerResponse): void {
      const fail = (err: ApiError) => sendError(req, res, err)
      prepare(req, false, fail).then(
        (p) => {
          if (!p) return
          if (p.access.kind === 'redirect') {
            res.writeHead(303, { location: p.access.location, 'set-cookie': p.access.cookie, 'cache-control': 'no-store', 'content-length': 0 })
            return void res.end()
          }
          forwardHttp(req, res, p.options)
        },
        (err: unknown) => {
          if (!(err instanceof ApiError)) d.log.warn({ err: (err as Error).message }, 'preview request failed')
          fail(asApiError(err))
        },
      )
    },

    upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
      const fail = (err: ApiError) => sendRawError(req, socket, err)
      socket.on('error', () => socket.destroy())
      prepare(req, true, fail).then(
        (p) => {
          if (p && p.access.kind === 'forward') forwardUpgrade(req, socket, head, p.options)
        },
        (err: unknown) => fail(asApiError(err)),
      )
    },
  }
}
export type PreviewFront = ReturnType<typeof createPreviewFront>
