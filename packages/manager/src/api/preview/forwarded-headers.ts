// What crosses the proxy in each direction besides the body. Towards the guest: never a
// credential of the manager (its cookies, X-API-Key, Authorization) and never the proxy's own
// hop-by-hop headers. Back to the browser: never a cookie that would reach beyond the preview host
// (a Domain attribute widens a cookie to a parent domain: the manager's host and every other
// preview under it) and never one named like the manager's own.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'

/** The manager's cookies are all named rds_* (the console's rds_session, the preview's rds_preview). */
export const isManagerCookie = (name: string) => name.toLowerCase().startsWith('rds_')

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings'])
// X-Access-Token is a sandbox's envd token, and the E2B routing headers are the manager's business.
const CREDENTIALS = new Set(['x-api-key', 'authorization', 'x-csrf-token', 'x-access-token', 'e2b-sandbox-id', 'e2b-sandbox-port'])

/** Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1). */
function connectionListed(h: IncomingHttpHeaders): Set<string> {
  const v = h.connection
  return new Set((typeof v === 'string' ? v : '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean))
}

/** The Cookie header without the manager's cookies; undefined when nothing is left. */
export function stripManagerCookies(cookie: string | undefined): string | undefined {
  if (!cookie) return undefined
  const kept = cookie.split(';').map((c) => c.trim()).filter((c) => c && !isManagerCookie(c.split('=')[0]!.trim()))
  return kept.length ? kept.join('; ') : undefined
}

export interface ClientInfo {
  /** The address the request came from (replaces any X-Forwarded-For the client sent). */
  remoteAddress: string | undefined
  /** The public scheme and host the browser used. */
  proto: string
  host: string
}

/** Request headers for the guest. `upgrade`: keep Connection/Upgrade so the guest can switch protocols. */
export function upstreamRequestHeaders(h: IncomingHttpHeaders, client: ClientInfo, upgrade: boolean): OutgoingHttpHeaders {
  const listed = connectionListed(h)
  const out: OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(h)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name) || CREDENTIALS.has(name) || name === 'cookie') continue
    if (name.startsWith('x-forwarded-') || name === 'forwarded') continue
    out[name] = value
  }
  const cookie = stripManagerCookies(typeof h.cookie === 'string' ? h.cookie : undefined)
  if (cookie) out.cookie = cookie
  if (upgrade && typeof h.upgrade === 'string') {
    out.connection = 'upgrade'
    out.upgrade = h.upgrade
  }
  if (client.remoteAddress) out['x-forwarded-for'] = client.remoteAddress
  out['x-forwarded-proto'] = client.proto
  out['x-forwarded-host'] = client.host
  return out
}

/** Set-Cookie values the browser may keep: no manager cookie names, no Domain other than the preview host itself. */
export function allowedSetCookies(values: string[], previewHost: string): string[] {
  return values.filter((v) => {
    const [pair, ...attrs] = v.split(';')
    const name = pair!.split('=')[0]!.trim()
    if (!name || isManagerCookie(name)) return false
    for (const a of attrs) {
      const [k, ...rest] = a.split('=')
      if (k!.trim().toLowerCase() !== 'domain') continue
      const domain = rest.join('=').trim().toLowerCase().replace(/^\./, '')
      if (domain !== previewHost) return false
    }
    return true
  })
}

/** Response headers for the browser; `upgrade`: the 101's Connection/Upgrade stay. */
export function downstreamResponseHeaders(h: IncomingHttpHeaders, previewHost: string, upgrade: boolean): OutgoingHttpHeaders {
  const listed = connectionListed(h)
  const out: OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(h)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name)) continue
    if (name === 'set-cookie') {
      const kept = allowedSetCookies(Array.isArray(value) ? value : [value], previewHost)
      if (kept.length) out[name] = kept
      continue
    }
    out[name] = value
  }
  if (upgrade) {
    out.connection = 'Upgrade'
    if (typeof h.upgrade === 'string') out.upgrade = h.upgrade
  }
  return out
}
