// The file worker: the one process that touches the user's tree for the file API, running as the
// user (uid 1000, spawned through rds-exec), so whatever a path leads to — a symlink swapped in
// after the agent's checks included — it reaches only what the user could reach anyway. Root never
// opens a user path. Bundled on its own (no agent code, no secrets: uid 1000 may read it) and run
// by the guest's Node.
//
//   file-worker.mjs serve            one JSON request per stdin line, one reply per stdout line
//   file-worker.mjs watch <dir> <public-dir> <recursive 0|1>   FileEvent lines until killed
//
// It trusts the agent's paths (already confined) and answers with the public names it was given.
import { existsSync, readdirSync, watch as fsWatch, type Dirent, type FSWatcher } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { failureOf, type WorkerRequest, type WorkerReply, type WireEntry } from './file-worker-wire.ts'
import { entryOf } from './file-entry.ts'
import { coalesceEvents, type RawWatchEvent } from './watch-events.ts'

class TooMany extends Error {}

async function list(real: string, publicPath: string, depth: number, max: number): Promise<WireEntry[]> {
  const out: WireEntry[] = []
  const walk = async (dir: string, pub: string, left: number): Promise<void> => {
    const names = (await fs.readdir(dir)).sort()
    for (const name of names) {
      const p = path.join(dir, name)
      // lstat: a symlink is listed as one and never followed out of the tree.
      const st = await fs.lstat(p).catch(() => undefined)
      if (!st) continue // gone between readdir and lstat
      if (out.length >= max) throw new TooMany()
      out.push(entryOf(st, name, path.posix.join(pub, name)))
      if (st.isDirectory() && left > 1) await walk(p, path.posix.join(pub, name), left - 1)
    }
  }
  const st = await fs.stat(real)
  if (!st.isDirectory()) throw Object.assign(new Error(`${publicPath} is not a directory`), { code: 'ENOTDIR' })
  await walk(real, publicPath, depth)
  return out
}

/** Entries a glob may look at before giving up: the walk is bounded even where few match. */
const GLOB_VISIT_MAX = 200_000

async function glob(start: string, publicStart: string, relPattern: string, prefix: string, max: number): Promise<WireEntry[]> {
  const out: WireEntry[] = []
  const rest = relPattern.slice(prefix.length).replace(/^\//, '')
  const deep = rest.split('/').includes('**')
  const levels = rest.split('/').length
  let visited = 0
  const walk = async (dir: string, rel: string, level: number): Promise<void> => {
    const names = (await fs.readdir(dir).catch(() => [] as string[])).sort()
    for (const name of names) {
      if (++visited > GLOB_VISIT_MAX) throw new TooMany()
      const p = path.join(dir, name)
      const r = rel ? `${rel}/${name}` : name
      const st = await fs.lstat(p).catch(() => undefined)
      if (!st) continue
      if (path.matchesGlob(r, rest)) {
        if (out.length >= max) throw new TooMany()
        out.push(entryOf(st, name, path.posix.join(publicStart, r)))
      }
      if (st.isDirectory() && (deep || level + 1 < levels)) await walk(p, r, level + 1)
    }
  }
  if (rest === '') {
    const st = await fs.lstat(start)
    return [entryOf(st, path.basename(publicStart), publicStart)]
  }
  await walk(start, '', 0)
  return out
}

async function handle(req: WorkerRequest): Promise<unknown> {
  switch (req.op) {
    case 'stat': {
      // Before a read's headers go out: a file the user may not read is a 403, not an aborted body.
      if (req.readable) await fs.access(req.path, fs.constants.R_OK)
      const st = req.follow ? await fs.stat(req.path) : await fs.lstat(req.path)
      return entryOf(st, path.posix.basename(req.as), req.as)
    }
    case 'list':
      return list(req.path, req.as, req.depth, req.max)
    case 'glob':
      return glob(req.start, req.as, req.pattern, req.prefix, req.max)
    case 'delete': {
      const st = await fs.lstat(req.path)
      if (!st.isDirectory()) await fs.unlink(req.path)
      else if (req.recursive) await fs.rm(req.path, { recursive: true })
      else await fs.rmdir(req.path)
      return null
    }
    case 'move':
      await fs.mkdir(path.dirname(req.to), { recursive: true })
      await fs.rename(req.from, req.to)
      return null
    case 'mkdir': {
      await fs.mkdir(req.path, { recursive: true })
      return null
    }
    case 'mkdirParent':
      await fs.mkdir(path.dirname(req.path), { recursive: true })
      return null
    case 'chmod':
      await fs.chmod(req.path, req.mode)
      return null
    case 'commit': {
      // Without a mode a replaced file keeps its own; a new one gets the usual 644.
      const mode = req.mode ?? ((await fs.stat(req.path).catch(() => undefined))?.mode ?? 0o644) & 0o777
      await fs.chmod(req.tmp, mode)
      await fs.rename(req.tmp, req.path)
      return null
    }
    case 'unlink':
      await fs.rm(req.path, { force: true })
      return null
  }
}

function serve(): void {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
  const send = (reply: WorkerReply): void => void process.stdout.write(`${JSON.stringify(reply)}\n`)
  lines.on('line', (line) => {
    let req: WorkerRequest
    try {
      req = JSON.parse(line) as WorkerRequest
    } catch {
      return
    }
    handle(req).then(
      (value) => send({ id: req.id, value }),
      (e: unknown) => send({ id: req.id, error: e instanceof TooMany ? { code: 'too_many_entries', message: `more than ${'max' in req ? req.max : GLOB_VISIT_MAX} entries` } : failureOf(e) }),
    )
  })
  // The agent closing our stdin is our end.
  lines.on('close', () => process.exit(0))
}

/** Events kept while the reader is slow; past this they are dropped and an overflow event is sent. */
const WATCH_QUEUE_MAX = 1024
/** Directories watched at most (one inotify watch each); deeper trees are watched in part. */
const WATCH_DIRS_MAX = 8192

/**
 * Node's own recursive fs.watch on Linux misses what happens in a directory created just before
 * (measured: a new directory's files went unreported), so the tree is watched here one directory
 * at a time: a directory that appears gets its own watch, and what was made in it before the watch
 * was in place is reported as created.
 */
function watch(real: string, publicDir: string, recursive: boolean): void {
  const queue: string[] = []
  let overflowed = false
  let waiting = false
  let batch: RawWatchEvent[] = []
  const watchers = new Map<string, FSWatcher>()
  const flush = (): void => {
    while (queue.length > 0 && !waiting) {
      if (!process.stdout.write(queue.shift()!)) {
        waiting = true
        process.stdout.once('drain', () => {
          waiting = false
          flush()
        })
      }
    }
    if (overflowed && queue.length === 0 && !waiting) {
      overflowed = false
      queue.push(`${JSON.stringify({ type: 'overflow' })}\n`)
      flush()
    }
  }
  const enqueue = (event: object): void => {
    if (queue.length >= WATCH_QUEUE_MAX) {
      overflowed = true
      return
    }
    queue.push(`${JSON.stringify(event)}\n`)
  }
  const push = (e: RawWatchEvent): void => {
    if (batch.length >= WATCH_QUEUE_MAX) {
      overflowed = true
      return
    }
    if (batch.length === 0) setTimeout(() => void settle(), 5)
    batch.push(e)
  }
  const unwatch = (rel: string): void => {
    for (const [dir, w] of watchers) {
      if (dir === rel || dir.startsWith(`${rel}/`)) {
        w.close()
        watchers.delete(dir)
      }
    }
  }
  const addDir = (rel: string, announce: boolean): void => {
    if (watchers.has(rel) || watchers.size >= WATCH_DIRS_MAX) return
    const abs = rel ? path.join(real, rel) : real
    let w: FSWatcher
    try {
      w = fsWatch(abs, (kind, name) => {
        if (name !== null) push({ kind: kind === 'change' ? 'change' : 'rename', name: rel ? `${rel}/${name}` : name.toString() })
      })
    } catch {
      return
    }
    w.on('error', () => unwatch(rel))
    watchers.set(rel, w)
    if (!recursive && rel === '') return
    let entries: Dirent[] = []
    try {
      entries = readdirSync(abs, { withFileTypes: true })
    } catch {}
    for (const d of entries) {
      const child = rel ? `${rel}/${d.name}` : d.name
      if (announce) push({ kind: 'rename', name: child })
      if (d.isDirectory() && recursive) addDir(child, announce)
    }
  }
  const settle = async (): Promise<void> => {
    const raw = batch
    batch = []
    // Whether a "rename" path exists now tells a create from a remove.
    const stats = await Promise.all(raw.map((e) => (e.kind === 'rename' ? fs.lstat(path.join(real, e.name)).catch(() => undefined) : Promise.resolve(undefined))))
    const exists = raw.map((e, i) => e.kind !== 'rename' || stats[i] !== undefined)
    for (const [i, e] of raw.entries()) {
      if (e.kind !== 'rename') continue
      if (stats[i]?.isDirectory() && recursive) addDir(e.name, true)
      else if (!stats[i]) unwatch(e.name)
    }
    const events = coalesceEvents(raw, exists).filter((ev) => !selfEvent(ev.path))
    for (const ev of events) enqueue({ ...ev, path: path.posix.join(publicDir, ev.path), ...(ev.from !== undefined ? { from: path.posix.join(publicDir, ev.from) } : {}) })
    flush()
  }
  // inotify reports a watched directory's own removal under its own name, inside it ("d/d"); the
  // parent's watch reports it properly, so those are dropped.
  const selfEvent = (rel: string): boolean => {
    const dir = path.posix.dirname(rel)
    return dir !== '.' && path.posix.basename(dir) === path.posix.basename(rel) && !watchers.has(dir) && !existsSync(path.join(real, dir))
  }
  addDir('', false)
  if (watchers.size === 0) {
    process.stderr.write(`cannot watch ${publicDir}\n`)
    process.exit(1)
  }
  enqueue({ type: 'ready' })
  flush()
}

const [mode, ...args] = process.argv.slice(2)
if (mode === 'serve') serve()
else if (mode === 'watch') watch(args[0]!, args[1]!, args[2] === '1')
else {
  process.stderr.write('usage: file-worker serve | watch <dir> <public-dir> <0|1>\n')
  process.exit(2)
}
