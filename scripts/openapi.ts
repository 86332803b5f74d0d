// Writes docs/openapi.json from the app's route schemas (the schemas are the source; this file
// is a copy for readers without a running manager). A unit test fails when it is stale.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pino from 'pino'
import { buildApp } from '../packages/manager/src/app.ts'
import { composeServices } from '../packages/manager/src/compose.ts'
import { loadConfig } from '../packages/manager/src/config.ts'

export async function generateOpenApi(): Promise<string> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-openapi-'))
  const s = await composeServices(loadConfig({ STORAGE_ROOT: root }), pino({ level: 'silent' }))
  try {
    const app = await buildApp(s, { apiKey: 'x' })
    await app.ready()
    const doc = `${JSON.stringify(app.swagger(), null, 2)}\n`
    await app.close()
    return doc
  } finally {
    await s.db.destroy()
    fs.rmSync(root, { recursive: true, force: true })
  }
}

export const OPENAPI_FILE = path.resolve(import.meta.dirname, '../docs/openapi.json')

if (import.meta.main) {
  fs.writeFileSync(OPENAPI_FILE, await generateOpenApi())
  console.log(`wrote ${OPENAPI_FILE}`)
}
