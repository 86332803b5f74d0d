// Upload and download. Root only validates and moves bytes; everything that touches the user's
// tree (mkdir, extraction, reading files to archive) runs as the user through rds-exec, so a
// symlink planted in /workspace can never steer a root write or read.
import { randomUUID } from 'node:crypto'
import fs from 'node:fs'
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { AgentRoutes, TAR_GZ, type DownloadQuery, type UploadQuery } from '@rds/protocol'
import { validateArchive } from '../archive/validate.ts'
import { DEFAULT_UPLOAD_MAX_BYTES, DEFAULT_UPLOAD_MAX_ENTRIES } from '../config.ts'
import type { AgentContext } from '../context.ts'
import { AgentFailure } from '../errors.ts'
import { sendError } from '../http/respond.ts'
import { baseEnv } from '../sandbox/env.ts'
import { resolveConfined, resolveExisting } from '../sandbox/paths.ts'
import { collect, spawnAsUser } from '../sandbox/spawn.ts'

const EXTRACT_TIMEOUT_MS = 10 * 60_000
const TOOL_STDERR_LIMIT = 64 * 1024

export async function handleUpload(ctx: AgentContext, req: Http2ServerRequest, q: UploadQuery): Promise<void> {
  const limits = { maxEntries: q.maxEntries ?? DEFAULT_UPLOAD_MAX_ENTRIES, maxBytes: q.maxBytes ?? DEFAULT_UPLOAD_MAX_BYTES }
  const dest = await resolveConfined(q.dest, ctx.workspacePaths, 'dest')
  if (dest.exists && !fs.statSync(dest.path).isDirectory()) {
    throw new AgentFailure('invalid_request', `dest ${JSON.stringify(q.dest)} is not a directory`)
  }

  const spool = path.join(ctx.spoolDir, `upload-${randomUUID()}.tar.gz`)
  try {
    // gzip never makes data meaningfully larger, so a compressed body over the uncompressed limit
    // (plus framing slack) is refused before it fills the spool.
    await pipeline(req, capBytes(limits.maxBytes + 1024 * 1024), fs.createWriteStream(spool, { flags: 'wx', mode: 0o600 }))
    await validateArchive(fs.createReadStream(spool), limits)
    await extractAsUser(ctx, spool, dest.path)
  } finally {
    fs.rmSync(spool, { force: true })
  }
}

function capBytes(max: number): (src: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
  return async function* (src) {
    let n = 0
    for await (const c of src) {
      n += c.length
      if (n > max) throw new AgentFailure('archive_too_large', `upload body over ${max} bytes`)
      yield c
    }
  }
}

async function extractAsUser(ctx: AgentContext, spool: string, dest: string): Promise<void> {
  const fd = fs.openSync(spool, 'r')
  try {
    const script = `mkdir -p -- "$1" && exec ${ctx.config.tar} -xzf - --no-same-owner --no-same-permissions -C "$1"`
    const proc = spawnAsUser(ctx.config, ctx.cgroups, {
      argv: [ctx.config.sh, '-c', script, 'rds-extract', dest],
      env: baseEnv(ctx.config),
      cwd: ctx.workspacePaths.base,
      stdinFd: fd,
    })
    const c = await collect(proc, { timeoutMs: EXTRACT_TIMEOUT_MS, maxOutputBytes: TOOL_STDERR_LIMIT })
    if (c.exitCode !== 0) {
      const why = c.timedOut ? 'timed out' : (c.spawnError ?? c.stderr.toString('utf8').trim().slice(0, 500)) || `exit code ${c.exitCode}`
      throw new AgentFailure('archive_invalid', `extracting the archive failed: ${why}`)
    }
  } finally {
    fs.closeSync(fd)
  }
}

export async function handleDownload(ctx: AgentContext, res: Http2ServerResponse, q: DownloadQuery): Promise<void> {
  const target = await resolveExisting(q.path, ctx.workspacePaths, 'path')
  const st = fs.statSync(target)
  let args: string[]
  if (st.isDirectory()) args = ['-C', target, '.']
  else if (st.isFile()) args = ['-C', path.dirname(target), path.basename(target)]
  else throw new AgentFailure('invalid_request', `path ${JSON.stringify(q.path)} is neither a file nor a directory`)

  const proc = spawnAsUser(ctx.config, ctx.cgroups, {
    argv: [ctx.config.tar, '-czf', '-', ...args],
    env: baseEnv(ctx.config),
    cwd: ctx.workspacePaths.base,
  })
  const { child } = proc
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => {
    if (stderr.length < TOOL_STDERR_LIMIT) stderr += c.toString('utf8')
  })
  // The client leaving must not leave tar running.
  res.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) proc.killAll()
  })

  await new Promise<void>((resolve) => {
    let started = false
    const stdout = child.stdout!
    stdout.on('data', (c: Buffer) => {
      if (res.stream.destroyed) return // client gone; 'close' above already killed tar
      if (!started) {
        started = true
        res.writeHead(AgentRoutes.download.status, { 'content-type': TAR_GZ })
      }
      if (!res.write(c)) {
        stdout.pause()
        res.once('drain', () => stdout.resume())
      }
    })
    let exit: number | null | undefined
    let ended = false
    const settle = (): void => {
      if (exit === undefined || !ended) return
      proc.release()
      // GNU tar exits 1 for "file changed as we read it": the archive is still complete.
      const ok = exit === 0 || exit === 1
      if (res.stream.destroyed) {
        resolve() // the client left; nobody to answer
        return
      }
      if (started && ok) res.end()
      else if (started) res.stream.close(2 /* NGHTTP2_INTERNAL_ERROR: no truncated "success" */)
      else if (ok) {
        res.writeHead(AgentRoutes.download.status, { 'content-type': TAR_GZ })
        res.end()
      } else sendError(res, new AgentFailure('invalid_request', `archiving ${JSON.stringify(q.path)} failed: ${stderr.trim().slice(0, 500) || `exit code ${exit}`}`))
      resolve()
    }
    stdout.once('end', () => {
      ended = true
      settle()
    })
    child.once('error', (e) => {
      stderr += e.message
      exit = -1
      ended = true
      settle()
    })
    child.once('exit', (code) => {
      exit = code
      settle()
    })
  })
}
