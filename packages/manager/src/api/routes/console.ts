// The admin console's pages: /login/ and /console/… serve the one page of the app (which routes
// in the browser), /console/assets/ its bundle, / goes to the console. A browser without a
// session asking for a console page is sent to /login/ first. Strict headers: the console runs
// only its own script, is never framed, and sends no referrer.
import fs from 'node:fs'
import path from 'node:path'
import fastifyStatic from '@fastify/static'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import type { AdminSessions } from '../../services/accounts/admin-sessions.ts'
import { SESSION_COOKIE } from '../auth.ts'

const PAGE_HEADERS = {
  // Styles may be inline: the terminal (xterm.js) writes its theme as a style element. Scripts
  // stay our bundle only.
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
}

export const consoleRoutes = (dist: string, sessions: AdminSessions): FastifyPluginAsync => async (app) => {
  const page = fs.readFileSync(path.join(dist, 'index.html'), 'utf8')
  const sendPage = (reply: FastifyReply) => reply.headers(PAGE_HEADERS).type('text/html; charset=utf-8').send(page)

  await app.register(fastifyStatic, { root: path.join(dist, 'assets'), prefix: '/console/assets/', decorateReply: false, cacheControl: true, maxAge: 0, setHeaders: (res) => res.header('x-content-type-options', 'nosniff') })

  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/console/'))
  app.get('/login', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/login/'))
  app.get('/login/', { schema: { hide: true } }, async (_req, reply) => sendPage(reply))
  app.get('/console', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/console/'))
  app.get('/console/*', { schema: { hide: true } }, async (req, reply) => {
    if (!(await sessions.resolve(req.cookies[SESSION_COOKIE]))) return reply.redirect('/login/')
    return sendPage(reply)
  })
}
