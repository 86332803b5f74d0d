// Every error code the manager can send is documented in docs/errors.md, and the document
// lists no code that no longer exists.
import fs from 'node:fs'
import path from 'node:path'
import { expect, it } from 'vitest'
import { AgentErrorCodes } from '@rds/protocol'

const root = path.resolve(import.meta.dirname, '../../../..')
const src = (f: string) => fs.readFileSync(path.join(root, 'packages/manager/src', f), 'utf8')

it('docs/errors.md and the code agree on the error codes', () => {
  const fromCode = new Set<string>()
  for (const f of ['errors.ts', 'api/error-handler.ts', 'api/validation.ts', 'api/auth.ts']) {
    for (const m of src(f).matchAll(/ApiError\(\d{3}, '([a-z_]+)'/g)) fromCode.add(m[1])
    for (const m of src(f).matchAll(/: '([a-z_]+)',?$/gm)) fromCode.add(m[1])
    for (const m of src(f).matchAll(/code: '([a-z_]+)'/g)) fromCode.add(m[1])
  }
  for (const c of AgentErrorCodes) if (c !== 'busy' && c !== 'internal') fromCode.add(c)
  fromCode.add('agent_error')
  const doc = fs.readFileSync(path.join(root, 'docs/errors.md'), 'utf8')
  const documented = new Set([...doc.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]))
  expect([...fromCode].filter((c) => !documented.has(c)).sort()).toEqual([])
  expect([...documented].filter((c) => !fromCode.has(c)).sort()).toEqual([])
})
