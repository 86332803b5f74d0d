// GET /files/read: a file's bytes (or one range of them), streamed from a `dd` run as the user, so
// the read has the user's rights whatever the path leads to by then. HTTP/2 flow control paces
// dd through its pipe: nothing is held here beyond the chunk in flight.
import type { Http2ServerResponse } from 'node:http2'
import { AgentRoutes, FILE_OFFSET_HEADER, FILE_SIZE_HEADER, OCTET_STREAM, parseRangeSpec, resolveRange, type FileEntry, type FileReadQuery } from '@rds/protocol'
import type { AgentContext } from '../context.ts'
import { AgentFailure } from '../errors.ts'
import { baseEnv } from '../sandbox/env.ts'
import { locate } from '../sandbox/file-locate.ts'
import { spawnAsUser } from '../sandbox/spawn.ts'

export async function handleFileRead(ctx: AgentContext, res: Http2ServerResponse, q: FileReadQuery): Promise<void> {
  const at = await locate(q.path, ctx.workspacePaths, { follow: true })
  if (at.exists === false) throw new AgentFailure('path_not_found', `${at.pub}: no such file or directory`)
  const st = (await ctx.fileWorker.call({ op: 'stat', path: at.real, as: at.pub, follow: true, readable: true })) as FileEntry
  if (st.type === 'dir') throw new AgentFailure('is_a_directory', `${at.pub} is a directory (list it with /files/list, or download it as tar.gz)`)
  if (st.type !== 'file') throw new AgentFailure('invalid_request', `${at.pub} is not a regular file`)
  let start = 0
  let length = st.size
  if (q.range !== undefined) {
    const spec = parseRangeSpec(q.range)
    const r = spec && resolveRange(spec, st.size)
    if (!r) throw new AgentFailure('range_not_satisfiable', `range ${JSON.stringify(q.range)} is not within ${at.pub} (${st.size} bytes)`)
    start = r.start
    length = r.end - r.start + 1
  }
  const headers = { 'content-type': OCTET_STREAM, 'content-length': length, [FILE_SIZE_HEADER]: st.size, [FILE_OFFSET_HEADER]: start }
  if (length === 0) {
    res.writeHead(AgentRoutes.fileRead.status, headers)
    res.end()
    return
  }
  const proc = spawnAsUser(ctx, {
    // count_bytes: exactly the bytes announced, even if the file grows meanwhile.
    argv: [ctx.config.dd, `if=${at.real}`, 'bs=1048576', 'iflag=skip_bytes,count_bytes', `skip=${start}`, `count=${length}`, 'status=none'],
    env: baseEnv(ctx.config),
    cwd: ctx.workspacePaths.base,
  })
  const { child } = proc
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => {
    if (stderr.length < 4096) stderr += c.toString('utf8')
  })
  res.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) proc.killAll()
  })
  res.writeHead(AgentRoutes.fileRead.status, headers)
  await new Promise<void>((resolve) => {
    let sent = 0
    const stdout = child.stdout!
    stdout.on('data', (c: Buffer) => {
      if (res.stream.destroyed) return
      sent += c.length
      if (!res.write(c)) {
        stdout.pause()
        res.once('drain', () => stdout.resume())
      }
    })
    let exited = false
    let ended = false
    const settle = (): void => {
      if (!exited || !ended) return
      proc.release()
      // Fewer bytes than announced (the file shrank, or dd failed): an aborted stream, never a
      // short "success".
      if (!res.stream.destroyed) {
        if (sent === length) res.end()
        else res.stream.close(2 /* NGHTTP2_INTERNAL_ERROR */)
      }
      resolve()
    }
    stdout.once('close', () => {
      ended = true
      settle()
    })
    child.once('error', () => {
      exited = true
      ended = true
      settle()
    })
    child.once('exit', () => {
      exited = true
      settle()
    })
  })
}
