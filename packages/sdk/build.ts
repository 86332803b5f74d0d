// Builds the publishable package: dist/index.mjs (ESM), dist/index.cjs (CommonJS) with esbuild,
// and the declarations with tsc. No runtime dependency: fetch, AbortSignal and streams are the platform's.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const here = path.dirname(fileURLToPath(import.meta.url))
const dist = path.join(here, 'dist')
fs.rmSync(dist, { recursive: true, force: true })
for (const [format, file] of [['esm', 'index.mjs'], ['cjs', 'index.cjs']] as const) {
  await build({ entryPoints: [path.join(here, 'src/index.ts')], bundle: true, platform: 'neutral', target: 'es2022', format, outfile: path.join(dist, file), logLevel: 'warning' })
}
execFileSync(path.join(here, '../../node_modules/.bin/tsc'), ['-p', path.join(here, 'tsconfig.build.json')], { stdio: 'inherit' })
// tsc keeps the sources' `./x.ts` specifiers in declarations; consumers resolve `./x.js` to x.d.ts.
for (const f of fs.readdirSync(dist).filter((f) => f.endsWith('.d.ts'))) {
  const file = path.join(dist, f)
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/(from '\.\/[^']+)\.ts'/g, "$1.js'"))
}
console.log(dist)
