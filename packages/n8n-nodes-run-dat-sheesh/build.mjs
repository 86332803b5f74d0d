// Builds the package as n8n loads community nodes: CommonJS in dist/ (n8n require()s the files
// named in package.json's "n8n" section), with the icon next to each node and credential.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

const dir = import.meta.dirname
fs.rmSync(path.join(dir, 'dist'), { recursive: true, force: true })
execFileSync(process.execPath, [path.join(dir, '../../node_modules/typescript/bin/tsc'), '-p', path.join(dir, 'tsconfig.json')], { stdio: 'inherit' })
const icon = path.join(dir, 'src/nodes/RunDatSheesh/runDatSheesh.svg')
for (const to of ['dist/nodes/RunDatSheesh', 'dist/credentials']) fs.copyFileSync(icon, path.join(dir, to, 'runDatSheesh.svg'))
// The package is ESM for its sources and tests; what n8n require()s is CommonJS.
fs.writeFileSync(path.join(dir, 'dist/package.json'), '{ "type": "commonjs" }\n')
