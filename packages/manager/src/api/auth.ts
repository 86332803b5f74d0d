// Authentication of every /v1 route: an X-API-Key (the env API_KEY, or a key minted in the
// console), or the admin's session cookie. The hook is registered inside the /v1 plugin, so
// Fastify runs it for every route that plugin declares, whatever spelling of the path matched
// the route (percent-encoding, `//`, `..` …): the decision follows the route, not the URL string.
// A session changes state only with its CSRF token in a header: a cross-site page can make the
// browser send the cookie, never read the token.
import crypto from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Errors } from '../errors.ts'
import { actorLabel, type Actor } from '../services/accounts/actor.ts'
import { asActor } from '../services/activity/request-actor.ts'
import type { AdminSessions } from '../services/accounts/admin-sessions.ts'
import type { ApiKeys } from '../services/accounts/api-keys.ts'

export const SESSION_COOKIE = 'rds_session'
export const CSRF_HEADER = 'x-csrf-token'
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is asking; set by the /v1 authentication hook before any handler runs. */
    actor: Actor
  }
}

const digest = (s: string) => crypto.createHash('sha256').update(s).digest()

/** Constant-time comparison; hashing first makes the lengths equal. */
export function keyMatches(given: string | undefined, expected: string): boolean {
  if (typeof given !== 'string' || given.length === 0) return false
  return crypto.timingSafeEqual(digest(given), digest(expected))
}

/**
 * A route's other way in, named in its config (`config: { ticketAuth }`): the WebSocket attach
 * takes a single-use ticket where a browser cannot send the header. Asked only when no key is
 * given; the ticket acts as whoever asked for it.
 */
export type TicketAuth = (req: FastifyRequest) => Actor | undefined

const header = (req: FastifyRequest, name: string): string | undefined => {
  const v = req.headers[name]
  return Array.isArray(v) ? v[0] : v
}

export interface Authenticators {
  envKey: string
  apiKeys: ApiKeys
  sessions: AdminSessions
}

/** The request's actor, or a 401/403 error. */
export async function authenticate(req: FastifyRequest, a: Authenticators): Promise<Actor> {
  const given = header(req, 'x-api-key')
  if (given !== undefined) {
    if (keyMatches(given, a.envKey)) return { kind: 'env-key' }
    const minted = await a.apiKeys.verify(given)
    if (minted) return minted
    // A wrong key is wrong even with a session beside it: say so rather than guess.
    throw Errors.unauthorized()
  }
  const ticketAuth = (req.routeOptions.config as { ticketAuth?: TicketAuth } | undefined)?.ticketAuth
  const viaTicket = ticketAuth?.(req)
  if (viaTicket) return viaTicket
  const sessionId = req.cookies[SESSION_COOKIE]
  const session = await a.sessions.resolve(sessionId)
  if (!session || !sessionId) throw Errors.unauthorized()
  if (!SAFE_METHODS.has(req.method) && !a.sessions.csrfMatches(sessionId, header(req, CSRF_HEADER))) throw Errors.csrfTokenInvalid()
  return { kind: 'admin', email: session.email }
}

export function requireAuth(app: FastifyInstance, a: Authenticators): void {
  // Declared for Fastify's request shape; every request has its actor before a handler runs.
  app.decorateRequest('actor', null as never)
  app.addHook('onRequest', async (req: FastifyRequest) => {
    req.actor = await authenticate(req, a)
  })
  // The handler runs inside the actor's context, so the services name it in the activity log.
  // A callback hook, because Fastify calls the handler synchronously from `done`: the context
  // set by run() reaches it (an async hook's context would not survive Fastify's promise chain).
  app.addHook('preHandler', (req, _reply, done) => asActor(actorLabel(req.actor), done))
}

/** For routes only an admin may use (minting keys): an API key is refused even if valid. */
export function requireSession(req: FastifyRequest): Extract<Actor, { kind: 'admin' }> {
  if (req.actor.kind !== 'admin') throw Errors.sessionRequired()
  return req.actor
}

/** The session cookie: httpOnly, SameSite=Strict, Secure over TLS, ending with the session. */
export function setSessionCookie(req: FastifyRequest, reply: FastifyReply, sessionId: string, expiresAt: string): void {
  reply.setCookie(SESSION_COOKIE, sessionId, { path: '/', httpOnly: true, sameSite: 'strict', secure: req.protocol === 'https', expires: new Date(expiresAt) })
}

export function clearSessionCookie(req: FastifyRequest, reply: FastifyReply): void {
  reply.clearCookie(SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'strict', secure: req.protocol === 'https' })
}
