// How a request appears in the manager log: Fastify's usual fields, with the query's `ticket`
// (a WebSocket attach ticket, a credential while it is valid) replaced. The API key travels in a
// header and is redacted by the logger's `redact` list.
import type { FastifyRequest } from 'fastify'

export const withoutTicket = (url: string): string => url.replace(/([?&]ticket=)[^&#]*/gi, '$1[redacted]')

export const requestLogSerializers = {
  req: (req: FastifyRequest) => ({
    method: req.method,
    url: withoutTicket(String(req.url)),
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  }),
}
