// API-key authentication. The hook is registered inside the /v1 plugin, so Fastify runs it
// for every route that plugin declares, whatever spelling of the path matched the route
// (percent-encoding, `//`, `..` …): the decision follows the route, not the URL string.
import crypto from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Errors } from '../errors.ts'

const digest = (s: string) => crypto.createHash('sha256').update(s).digest()

/** Constant-time comparison; hashing first makes the lengths equal. */
export function keyMatches(given: string | undefined, expected: string): boolean {
  if (typeof given !== 'string' || given.length === 0) return false
  return crypto.timingSafeEqual(digest(given), digest(expected))
}

/**
 * A route's other way in, named in its config (`config: { ticketAuth }`): the WebSocket attach
 * takes a single-use ticket where a browser cannot send the header. Asked only when the key is
 * missing or wrong, so a valid key never uses up a ticket.
 */
export type TicketAuth = (req: FastifyRequest) => boolean

export function requireApiKey(app: FastifyInstance, apiKey: string): void {
  app.addHook('onRequest', async (req: FastifyRequest) => {
    const given = req.headers['x-api-key']
    if (keyMatches(Array.isArray(given) ? given[0] : given, apiKey)) return
    const ticketAuth = (req.routeOptions.config as { ticketAuth?: TicketAuth } | undefined)?.ticketAuth
    if (!ticketAuth?.(req)) throw Errors.unauthorized()
  })
}
