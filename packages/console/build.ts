// Builds the console into dist/ with esbuild (one bundle, one stylesheet, the page), when its
// sources changed since the last build: the manager calls it at start, so `npm start` needs no
// separate step, and a build takes well under a second.
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const here = path.dirname(fileURLToPath(import.meta.url))
export const CONSOLE_DIST = path.join(here, 'dist')
const SRC = path.join(here, 'src')

function sourceHash(): string {
  const h = crypto.createHash('sha256')
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else h.update(p).update(fs.readFileSync(p))
    }
  }
  walk(SRC)
  return h.digest('hex')
}

/** Builds dist/ unless it is current; returns the directory. */
export async function buildConsole(): Promise<string> {
  const stamp = path.join(CONSOLE_DIST, '.source-hash')
  const hash = sourceHash()
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === hash) return CONSOLE_DIST
  const tmp = `${CONSOLE_DIST}.tmp-${process.pid}`
  fs.rmSync(tmp, { recursive: true, force: true })
  await build({
    entryPoints: { console: path.join(SRC, 'main.tsx') },
    bundle: true,
    format: 'esm',
    target: 'es2022',
    minify: true,
    sourcemap: 'linked',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    outdir: path.join(tmp, 'assets'),
    logLevel: 'warning',
  })
  // xterm.js's own stylesheet first, ours after it (ours may adjust it).
  const xtermCss = fs.readFileSync(createRequire(import.meta.url).resolve('@xterm/xterm/css/xterm.css'), 'utf8')
  fs.writeFileSync(path.join(tmp, 'assets', 'console.css'), `${xtermCss}\n${fs.readFileSync(path.join(SRC, 'styles.css'), 'utf8')}`)
  fs.copyFileSync(path.join(SRC, 'index.html'), path.join(tmp, 'index.html'))
  fs.writeFileSync(path.join(tmp, '.source-hash'), hash)
  // Swapped in whole, so a manager serving the old build never sees half of the new one. Two
  // processes building at once (parallel test files) both produce the same files: the loser of
  // the rename drops its copy.
  fs.rmSync(CONSOLE_DIST, { recursive: true, force: true })
  try {
    fs.renameSync(tmp, CONSOLE_DIST)
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true })
    if (!(fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === hash)) throw err
  }
  return CONSOLE_DIST
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(await buildConsole())
