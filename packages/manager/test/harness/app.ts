// The real app over real services with a temporary STORAGE_ROOT and an empty database, for
// tests that need no VM (app.inject). Call the returned close() in afterAll.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.ts'
import { composeServices } from '../../src/compose.ts'
import { loadConfig } from '../../src/config.ts'
import { instanceOf, tryHoldMark } from '../../src/runtime/reclaim/instance-mark.ts'

export async function testApp(apiKey: string): Promise<{ app: FastifyInstance; root: string; close: () => Promise<void> }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-unit-'))
  // A live instance like any manager: a manager starting meanwhile leaves its network alone.
  const mark = await tryHoldMark(instanceOf(root))
  const s = await composeServices(loadConfig({ STORAGE_ROOT: root }), pino({ level: 'silent' }))
  const app = await buildApp(s, { apiKey })
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
