// Regenerates packages/manager/src/api/e2b/gen from E2B's envd .proto files (copied unchanged into
// packages/manager/src/api/e2b/proto from /work/shared/reference/e2b): message types and service
// descriptors for Connect RPC. JavaScript with .d.ts beside it, because TypeScript enums are not
// erasable syntax and Node runs our .ts sources by stripping types. The output is committed; run
// this after changing a .proto file: `node scripts/gen-e2b.ts`.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

const root = path.resolve(import.meta.dirname, '..')
const bin = path.join(root, 'node_modules/.bin')
const protoDir = 'packages/manager/src/api/e2b/proto'
const outDir = 'packages/manager/src/api/e2b/gen'

const template = {
  version: 'v2',
  plugins: [{ local: path.join(bin, 'protoc-gen-es'), out: outDir, opt: ['target=js+dts', 'import_extension=js'] }],
}

fs.rmSync(path.join(root, outDir), { recursive: true, force: true })
execFileSync(path.join(bin, 'buf'), ['generate', protoDir, '--template', JSON.stringify(template)], { cwd: root, stdio: 'inherit' })
console.log(`gen-e2b: wrote ${outDir}`)
