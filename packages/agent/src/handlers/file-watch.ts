// GET /files/watch: FileEvent lines from a watcher the user runs (the file worker in watch mode,
// Node's fs.watch on inotify), until the client leaves, which kills the watcher. The watcher is
// the user's process: each line is checked against the schema and the watched path before it is
// passed on. Flow control reaches back to it: while the client is slow this end stops reading,
// the pipe fills, and the watcher's bounded queue drops events and says so with `overflow`.
import type { Http2ServerResponse } from 'node:http2'
import type net from 'node:net'
import { AgentRoutes, FILE_EVENT_MAX_BYTES, FileEvent, matches, NDJSON, readLines, type FileEntry, type FileWatchQuery } from '@rds/protocol'
import type { AgentContext } from '../context.ts'
import { AgentFailure } from '../errors.ts'
import { baseEnv } from '../sandbox/env.ts'
import { locate } from '../sandbox/file-locate.ts'
import { spawnAsUser } from '../sandbox/spawn.ts'

const inside = (p: string | undefined, dir: string): boolean => p === undefined || p === dir || p.startsWith(`${dir}/`)

export async function handleFileWatch(ctx: AgentContext, res: Http2ServerResponse, q: FileWatchQuery): Promise<void> {
  const at = await locate(q.path, ctx.workspacePaths, { follow: true })
  if (at.exists === false) throw new AgentFailure('path_not_found', `${at.pub}: no such file or directory`)
  const st = (await ctx.fileWorker.call({ op: 'stat', path: at.real, as: at.pub, follow: true })) as FileEntry
  if (st.type !== 'dir') throw new AgentFailure('not_a_directory', `${at.pub} is not a directory (a watch is of a directory)`)
  const proc = spawnAsUser(ctx, {
    argv: [ctx.config.node, ctx.config.fileWorker, 'watch', at.real, at.pub, q.recursive === 'false' ? '0' : '1'],
    env: baseEnv(ctx.config),
    cwd: ctx.workspacePaths.base,
  })
  const { child } = proc
  child.stderr!.resume()
  res.writeHead(AgentRoutes.fileWatch.status, { 'content-type': NDJSON })
  await new Promise<void>((resolve) => {
    res.on('close', () => {
      proc.killAll()
      resolve()
    })
    const stdout = child.stdout as net.Socket
    readLines(stdout, FILE_EVENT_MAX_BYTES, (line) => {
      let ev: unknown
      try {
        ev = JSON.parse(line)
      } catch {
        return
      }
      if (!matches(FileEvent, ev) || !inside(ev.path, at.pub) || !inside(ev.from, at.pub)) return
      if (res.stream.destroyed) return
      if (!res.write(`${JSON.stringify(ev)}\n`)) {
        stdout.pause()
        res.once('drain', () => stdout.resume())
      }
    }, () => {})
    child.once('exit', () => {
      proc.release()
      // The watcher ended by itself (the directory went, or user code killed it): so does the stream.
      if (!res.stream.destroyed) res.end()
      resolve()
    })
  })
}
