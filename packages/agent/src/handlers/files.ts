// Upload and download. Root only validates and moves bytes; everything that touches the user's
// tree (mkdir, extraction, reading files to archive) runs as the user through rds-exec, so a
// symlink planted in /workspace can never steer a root write or read.
import { randomUUID } from 'node:crypto'
import fs from 'node:fs'
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2'
import path from 'node:path'
import { AgentRoutes, BODY_BYTES_TRAILER, plainTarMaxBytes, TAR, TAR_GZ, type ArchiveFormat, type DownloadQuery, type UploadQuery } from '@rds/protocol'
import { cheapGzip } from '../archive/cheap-gzip.ts'
import { receiveArchive } from '../archive/receive.ts'
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

  const spool = path.join(ctx.spoolDir, `upload-${randomUUID()}.tar`)
  try {
    // gzip never makes data meaningfully larger (and plain tar only adds headers), so a body over
    // the uncompressed limit (plus framing) is refused before it fills the spool.
    const { bytes, format, checked } = await receiveArchive(req, spool, limits, plainTarMaxBytes(limits))
    // An abandoned body may still end normally on the wire (the sender's stack ends a stream
    // before resetting it), and a plain tar cut at an entry boundary still reads as complete:
    // only the sender's trailer with the full count confirms it.
    const rst = req.stream.rstCode
    if (req.aborted || (rst !== undefined && rst !== 0) || req.trailers?.[BODY_BYTES_TRAILER] !== String(bytes)) {
      throw new AgentFailure('invalid_request', 'the upload did not complete (the body ended without its length trailer)')
    }
    await checked()
    await extractAsUser(ctx, spool, dest.path, format)
  } finally {
    fs.rmSync(spool, { force: true })
  }
}

/** Plain tar needs no gunzip at all: not in the check, not in the extraction. */
async function extractAsUser(ctx: AgentContext, spool: string, dest: string, format: ArchiveFormat): Promise<void> {
  const fd = fs.openSync(spool, 'r')
  try {
    const script = `mkdir -p -- "$1" && exec ${ctx.config.tar} -x${format === 'tar.gz' ? 'z' : ''}f - --no-same-owner --no-same-permissions -C "$1"`
    const proc = spawnAsUser(ctx, {
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
  const format = q.format ?? 'tar.gz'
  const contentType = format === 'tar.gz' ? TAR_GZ : TAR
  const st = fs.statSync(target)
  let args: string[]
  if (st.isDirectory()) args = ['-C', target, '.']
  else if (st.isFile()) args = ['-C', path.dirname(target), path.basename(target)]
  else throw new AgentFailure('invalid_request', `path ${JSON.stringify(q.path)} is neither a file nor a directory`)

  const proc = spawnAsUser(ctx, {
    argv: [ctx.config.tar, '-cf', '-', ...args],
    env: baseEnv(ctx.config),
    cwd: ctx.workspacePaths.base,
  })
  const { child } = proc
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => {
    if (stderr.length < TOOL_STDERR_LIMIT) stderr += c.toString('utf8')
  })
  // Compressed here rather than by tar: cheaply (cheap-gzip.ts), since under emulation deflate is
  // the download's bottleneck. Deflating bytes the user chose is no risk to the agent.
  const stdout = format === 'tar.gz' ? cheapGzip(child.stdout!) : child.stdout!
  // The client leaving must not leave tar running.
  res.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) proc.killAll()
    stdout.destroy()
  })

  await new Promise<void>((resolve) => {
    let started = false
    stdout.on('data', (c: Buffer) => {
      if (res.stream.destroyed) return // client gone; 'close' above already killed tar
      if (!started) {
        started = true
        res.writeHead(AgentRoutes.download.status, { 'content-type': contentType })
      }
      if (!res.write(c)) {
        stdout.pause()
        res.once('drain', () => stdout.resume())
      }
    })
    let exit: number | null | undefined
    let ended = false
    let broken = false
    const settle = (): void => {
      if (exit === undefined || !ended) return
      proc.release()
      // GNU tar exits 1 for "file changed as we read it": the archive is still complete.
      const ok = !broken && (exit === 0 || exit === 1)
      if (res.stream.destroyed) {
        resolve() // the client left; nobody to answer
        return
      }
      if (started && ok) res.end()
      else if (started) res.stream.close(2 /* NGHTTP2_INTERNAL_ERROR: no truncated "success" */)
      else if (ok) {
        res.writeHead(AgentRoutes.download.status, { 'content-type': contentType })
        res.end()
      } else sendError(res, new AgentFailure('invalid_request', `archiving ${JSON.stringify(q.path)} failed: ${stderr.trim().slice(0, 500) || `exit code ${exit}`}`))
      resolve()
    }
    stdout.once('end', () => {
      ended = true
      settle()
    })
    // Closed before its end (the compressor failed, or the client left and it was destroyed): the
    // archive is incomplete whatever tar says.
    stdout.on('error', () => {})
    stdout.once('close', () => {
      if (ended) return
      broken = true
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
