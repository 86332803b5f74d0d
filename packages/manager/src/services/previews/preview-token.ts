// Preview tokens: `<expiry seconds>.<HMAC>`, the HMAC over the VM, the port and the expiry under a
// key derived from the manager key. The VM and port are not in the token: they come from the host
// the token is presented on, so a token (or the cookie it becomes) opens exactly one port of one
// VM, and moving it to another preview host fails the check. Nothing is stored: a token is valid
// until it expires or the manager key changes.
import crypto from 'node:crypto'

export type TokenCheck = 'ok' | 'invalid' | 'expired'

export function createPreviewTokens(managerKey: Buffer) {
  // A key of its own: a preview MAC can never be confused with anything else sealed by the manager key.
  const key = Buffer.from(crypto.hkdfSync('sha256', managerKey, Buffer.alloc(0), 'rds preview token v1', 32))
  const mac = (vmId: string, port: number, exp: number) => crypto.createHmac('sha256', key).update(`${vmId}\n${port}\n${exp}`).digest()

  return {
    sign(vmId: string, port: number, expiresAtMs: number): string {
      const exp = Math.floor(expiresAtMs / 1000)
      return `${exp}.${mac(vmId, port, exp).toString('base64url')}`
    },
    check(token: string | undefined, vmId: string, port: number, nowMs = Date.now()): TokenCheck {
      if (typeof token !== 'string') return 'invalid'
      const m = /^([1-9][0-9]{0,11})\.([A-Za-z0-9_-]{43})$/.exec(token)
      if (!m) return 'invalid'
      const exp = Number(m[1])
      const given = Buffer.from(m[2]!, 'base64url')
      if (given.length !== 32 || !crypto.timingSafeEqual(given, mac(vmId, port, exp))) return 'invalid'
      return exp * 1000 > nowMs ? 'ok' : 'expired'
    },
    /** Seconds the token is still valid for (a cookie's Max-Age); 0 when it is not. */
    remainingSeconds(token: string, nowMs = Date.now()): number {
      const exp = Number(token.split('.')[0])
      return Number.isFinite(exp) ? Math.max(0, Math.floor(exp - nowMs / 1000)) : 0
    },
  }
}
export type PreviewTokens = ReturnType<typeof createPreviewTokens>
