// IPv4 addresses and CIDR blocks as 32-bit integers. Parsing is strict (ipaddr.js, four-part
// decimal only), so "010.1.1.1", "1.2.3" or "::1" never slip into a firewall rule.
import ipaddr from 'ipaddr.js'

export interface Cidr {
  /** Network address (host bits cleared). */
  base: number
  prefix: number
}

export function parseAddress(s: string): number | undefined {
  if (!ipaddr.IPv4.isValidFourPartDecimal(s)) return undefined
  return toInt(ipaddr.IPv4.parse(s).octets)
}

/** "a.b.c.d" or "a.b.c.d/n"; a bare address is a /32. Host bits set in the input are cleared. */
export function parseCidr(s: string): Cidr | undefined {
  const [addr, len, extra] = s.trim().split('/')
  if (extra !== undefined) return undefined
  const ip = parseAddress(addr ?? '')
  if (ip === undefined) return undefined
  const prefix = len === undefined ? 32 : /^\d{1,2}$/.test(len) ? Number(len) : NaN
  if (!(prefix >= 0 && prefix <= 32)) return undefined
  return { base: (ip & mask(prefix)) >>> 0, prefix }
}

export const mask = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0)
export const size = (c: Cidr) => 2 ** (32 - c.prefix)
export const contains = (c: Cidr, ip: number) => ((ip & mask(c.prefix)) >>> 0) === c.base
/** True when every address of `inner` is in `outer`. */
export const within = (inner: Cidr, outer: Cidr) => inner.prefix >= outer.prefix && contains(outer, inner.base)
export const overlaps = (a: Cidr, b: Cidr) => within(a, b) || within(b, a)

export const toInt = (o: number[]) => (((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0)
export const formatAddress = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
export const formatCidr = (c: Cidr) => `${formatAddress(c.base)}/${c.prefix}`
