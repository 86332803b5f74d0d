// RATE_LIMIT_PER_MIN: requests per minute per caller, on @fastify/rate-limit (its in-memory
// store; one manager, one count). The caller is the authenticated actor where there is one —
// a minted key by its id, the env API_KEY, the admin — else the client address; never the
// secret itself, and never a key that did not authenticate (a made-up key would get a fresh
// count each time). So the limit is checked after authentication (preValidation): a request
// refused with 401 is not counted. The probes and the login (which has its own throttle for
// failures, LOGIN_MAX_FAILURES) are exempt.
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Errors } from '../errors.ts'
import { actorLabel } from '../services/accounts/actor.ts'

const EXEMPT_ROUTES = new Set(['/health', '/ready', '/auth/login'])

/** The count a request is charged to. */
export const rateLimitKey = (req: FastifyRequest): string => (req.actor ? actorLabel(req.actor) : `ip:${req.ip}`)

export async function installRateLimit(app: FastifyInstance, perMinute: number): Promise<void> {
  if (perMinute <= 0) return
  await app.register(rateLimit, {
    max: perMinute,
    timeWindow: 60_000,
    hook: 'preValidation',
    keyGenerator: rateLimitKey,
    allowList: (req) => EXEMPT_ROUTES.has(req.routeOptions.url ?? ''),
    // The error handler sends it with Retry-After (retryAfterSeconds) and the request id.
    errorResponseBuilder: (_req, context) => Errors.rateLimited(perMinute, Math.max(1, Math.ceil(context.ttl / 1000))),
  })
}
