// The real app over real services with a temporary STORAGE_ROOT and an empty database, for
// tests that need no VM (app.inject). Call the returned close() in afterAll. Every /v1 answer of
// app.inject is checked against the app's own OpenAPI document, as ManagerProcess does.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pino from 'pino'
import type { FastifyInstance, InjectOptions } from 'fastify'
import { buildApp } from '../../src/app.ts'
import { composeServices } from '../../src/compose.ts'
import { loadConfig } from '../../src/config.ts'
import { instanceOf, tryHoldMark } from '../../src/runtime/reclaim/instance-mark.ts'
import { enforce, OpenApiResponses, type OpenApiDocument } from './openapi-responses.ts'

export async function testApp(apiKey: string): Promise<{ app: FastifyInstance; root: string; close: () => Promise<void> }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-unit-'))
  // A live instance like any manager: a manager starting meanwhile leaves its network alone.
  const mark = await tryHoldMark(instanceOf(root))
  const s = await composeServices(loadConfig({ STORAGE_ROOT: root }), pino({ level: 'silent' }))
  const app = await buildApp(s, { apiKey })
  await app.ready()
  const responses = new OpenApiResponses(app.swagger() as unknown as OpenApiDocument)
  const inject = app.inject.bind(app)
  app.inject = (async (opts: InjectOptions) => {
    const r = await inject(opts)
    const url = String(opts.url ?? opts.path ?? '')
    if (url.startsWith('/v1/')) enforce(responses.check(opts.method ?? 'GET', url, r.statusCode, r.headers['content-type'] as string | undefined, r.body), r.statusCode, r.body)
    return r
  }) as typeof app.inject
  return {
    app,
    root,
    close: async () => {
      await app.close()
      // No VM ever runs here, but a request may have set up the network namespace: never leave it.
      await s.network.close(0).catch(() => {})
      await s.db.destroy()
      if ('mark' in mark) await mark.mark.release()
      fs.rmSync(root, { recursive: true, force: true })
    },
  }
}
