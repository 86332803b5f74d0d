import fs from 'node:fs'
import { expect, it } from 'vitest'
import { generateOpenApi, OPENAPI_FILE } from '../../../../scripts/openapi.ts'

it('docs/openapi.json is generated from the current schemas (run: npm run openapi)', async () => {
  expect(fs.readFileSync(OPENAPI_FILE, 'utf8')).toBe(await generateOpenApi())
})
