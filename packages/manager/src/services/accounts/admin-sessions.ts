// Admin login and sessions. The admin is ADMIN_EMAIL / ADMIN_PASSWORD (no login at all without a
// password). A session id is 32 random bytes in the httpOnly cookie; the database holds only its
// SHA-256, with an idle and an absolute end, so sessions survive a manager restart and a copy of
// the database lets nobody in. Requests that change state with a session must carry its CSRF
// token, an HMAC of the session id that only same-origin script can read (from login or /auth/me).
import crypto from 'node:crypto'
import type { AdminAuthConfig } from '../../config.ts'
import { Errors } from '../../errors.ts'
import type { AdminSessionsRepo } from '../../store/admin-sessions-repo.ts'
import type { RecordActivity } from '../activity/activity-log.ts'
import { LoginThrottle } from './login-throttle.ts'

export interface AdminSession {
  email: string
  csrfToken: string
  expiresAt: string
}

/** How often a session's last-seen time is written at most: every request would be a write. */
const TOUCH_EVERY_MS = 60_000

const sha256 = (s: string) => crypto.createHash('sha256').update(s).digest()
const idHash = (sessionId: string) => sha256(sessionId).toString('hex')
/** Equal-length digests compared in constant time: neither length nor content leaks through timing. */
const sameSecret = (given: string, expected: string) => crypto.timingSafeEqual(sha256(given), sha256(expected))

export function createAdminSessions(deps: { config: AdminAuthConfig; repo: AdminSessionsRepo; activity: RecordActivity }) {
  const { config, repo } = deps
  const throttle = new LoginThrottle(config.loginMaxFailures, config.loginWindowMs)
  const csrfOf = (sessionId: string) => crypto.createHmac('sha256', sessionId).update('rds-csrf').digest('base64url')
  let lastSweep = 0

  async function sweep(now: number): Promise<void> {
    if (now - lastSweep < TOUCH_EVERY_MS) return
    lastSweep = now
    await repo.removeExpired(new Date(now).toISOString(), new Date(now - config.sessionIdleMs).toISOString())
  }

  return {
    /** Whether an admin can log in at all (ADMIN_PASSWORD set). */
    get enabled(): boolean {
      return config.adminPassword !== undefined && config.adminEmail !== undefined
    },

    /** Checks the credentials of `client` (its address) and opens a session: its id goes in the cookie. */
    async login(email: string, password: string, client: string): Promise<AdminSession & { sessionId: string }> {
      if (config.adminPassword === undefined || config.adminEmail === undefined) throw Errors.adminLoginDisabled()
      const wait = throttle.retryAfterS(client)
      if (wait > 0) throw Errors.loginRateLimited(wait)
      // Both compared every time, so the answer's timing does not say which one was wrong.
      const emailOk = sameSecret(email.trim().toLowerCase(), config.adminEmail.trim().toLowerCase())
      const passwordOk = sameSecret(password, config.adminPassword)
      if (!(emailOk && passwordOk)) {
        throttle.fail(client)
        // Who tried is not known, only where from.
        deps.activity({ type: 'auth.login_failed', entityType: 'admin', actor: 'anonymous', message: `Failed admin login from ${client}`, meta: { client } })
        throw Errors.invalidCredentials()
      }
      throttle.succeed(client)
      const now = Date.now()
      await sweep(now)
      const sessionId = crypto.randomBytes(32).toString('base64url')
      const expiresAt = new Date(now + config.sessionMaxMs).toISOString()
      const at = new Date(now).toISOString()
      await repo.insert({ idHash: idHash(sessionId), email: config.adminEmail, createdAt: at, lastSeenAt: at, expiresAt })
      deps.activity({ type: 'auth.login', entityType: 'admin', entityId: config.adminEmail, actor: `admin:${config.adminEmail}`, message: `Admin ${config.adminEmail} logged in`, meta: { client } })
      return { sessionId, email: config.adminEmail, csrfToken: csrfOf(sessionId), expiresAt }
    },

    /** The live session of a cookie value, or undefined (unknown, expired, idle too long, or logins now disabled). */
    async resolve(sessionId: string | undefined): Promise<AdminSession | undefined> {
      if (!sessionId || sessionId.length > 128 || !this.enabled) return undefined
      const now = Date.now()
      const s = await repo.get(idHash(sessionId))
      if (!s) return undefined
      if (Date.parse(s.expiresAt) <= now || Date.parse(s.lastSeenAt) + config.sessionIdleMs <= now) {
        await repo.remove(s.idHash)
        return undefined
      }
      if (now - Date.parse(s.lastSeenAt) >= TOUCH_EVERY_MS) await repo.touch(s.idHash, new Date(now).toISOString())
      return { email: s.email, csrfToken: csrfOf(sessionId), expiresAt: s.expiresAt }
    },

    /** Whether `token` is the CSRF token of this session. */
    csrfMatches(sessionId: string, token: string | undefined): boolean {
      return typeof token === 'string' && token.length > 0 && sameSecret(token, csrfOf(sessionId))
    },

    async logout(sessionId: string | undefined): Promise<void> {
      if (!sessionId || sessionId.length > 128) return
      const s = await repo.get(idHash(sessionId))
      if (!s) return
      await repo.remove(s.idHash)
      deps.activity({ type: 'auth.logout', entityType: 'admin', entityId: s.email, actor: `admin:${s.email}`, message: `Admin ${s.email} logged out` })
    },
  }
}
export type AdminSessions = ReturnType<typeof createAdminSessions>
