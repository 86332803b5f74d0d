// `npm run bench`: the issue-18 figures in one run, script after script (each boots its own
// manager and cleans up after itself), so nothing of one run's load overlaps another's.
// Usage: npm run bench [-- --json] [--only run,density] — with --json the scripts' figures come
// out as one JSON document on stdout; without it each script prints its own tables.
// Options of one script go to it alone: `node bench/run.ts --runs 3`.
import { spawnSync } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'

const SCRIPTS = ['run', 'aslr', 'snapshots', 'density'] as const

const { values: opt } = parseArgs({ options: { json: { type: 'boolean', default: false }, only: { type: 'string' } } })
const chosen = opt.only ? opt.only.split(',').map((s) => s.trim()) : [...SCRIPTS]
const unknown = chosen.filter((s) => !(SCRIPTS as readonly string[]).includes(s))
if (unknown.length > 0) {
  console.error(`unknown bench script(s): ${unknown.join(', ')} (choose from ${SCRIPTS.join(', ')})`)
  process.exit(2)
}

const results: unknown[] = []
let failed = false
for (const name of chosen) {
  process.stderr.write(`\n== bench/${name}.ts ==\n`)
  const r = spawnSync(process.execPath, [path.join(import.meta.dirname, `${name}.ts`), ...(opt.json ? ['--json'] : [])], {
    stdio: ['ignore', opt.json ? 'pipe' : 'inherit', 'inherit'],
    maxBuffer: 64 << 20,
    encoding: 'utf8',
  })
  if (r.status !== 0) {
    failed = true
    process.stderr.write(`bench/${name}.ts failed (exit ${r.status ?? r.signal})\n`)
    continue
  }
  if (opt.json) results.push(JSON.parse(r.stdout))
}
if (opt.json) console.log(JSON.stringify({ machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '', memGiB: Math.round(os.totalmem() / 2 ** 30) }, runs: results }, null, 2))
process.exit(failed ? 1 : 0)
