// The admin's login: /auth/login, /auth/logout, /auth/me (outside /v1: no API key).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { Errors } from '../../errors.ts'
import type { AdminSessions } from '../../services/accounts/admin-sessions.ts'
import { clearSessionCookie, CSRF_HEADER, SESSION_COOKIE, setSessionCookie } from '../auth.ts'
import { AdminSessionPublic, LoginBody } from '../schemas/accounts.ts'
import { errorResponses } from '../schemas/common.ts'

const tags = ['auth']

export const authRoutes = (sessions: AdminSessions): FastifyPluginAsyncTypebox => async (app) => {
  app.post(
    '/auth/login',
    {
      bodyLimit: 16 * 1024,
      schema: { tags, summary: 'Log in as the admin (ADMIN_EMAIL / ADMIN_PASSWORD); sets the rds_session cookie', security: [], body: LoginBody, response: { 200: AdminSessionPublic, ...errorResponses(400, 401, 403, 413, 415, 429) } },
    },
    async (req, reply) => {
      const s = await sessions.login(req.body.email, req.body.password, req.ip)
      setSessionCookie(req, reply, s.sessionId, s.expiresAt)
      return { email: s.email, csrfToken: s.csrfToken, expiresAt: s.expiresAt }
    },
  )

  app.post('/auth/logout', { schema: { tags, summary: 'End the session (needs its X-CSRF-Token) and clear the cookie', security: [], response: { 200: Type.Object({ ok: Type.Boolean() }), ...errorResponses(403) } } }, async (req, reply) => {
    const sessionId = req.cookies[SESSION_COOKIE]
    // Logging someone out is a state change a cross-site page must not cause.
    if (sessionId && (await sessions.resolve(sessionId))) {
      const token = req.headers[CSRF_HEADER]
      if (!sessions.csrfMatches(sessionId, Array.isArray(token) ? token[0] : token)) throw Errors.csrfTokenInvalid()
    }
    await sessions.logout(sessionId)
    clearSessionCookie(req, reply)
    return { ok: true }
  })

  app.get('/auth/me', { schema: { tags, summary: 'The logged-in admin, and the session\'s CSRF token', security: [], response: { 200: AdminSessionPublic, ...errorResponses(401) } } }, async (req) => {
    const s = await sessions.resolve(req.cookies[SESSION_COOKIE])
    if (!s) throw Errors.unauthorized()
    return s
  })
}
