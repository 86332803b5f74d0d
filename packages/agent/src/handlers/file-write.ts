// PUT /files/write: the body streams into a hidden part file next to the target, written by `cat`
// run as the user, and is renamed over the target (by the user's file worker) only once every
// byte arrived and cat succeeded. A failed or abandoned upload leaves no half file under the
// final name: its part file is removed (a `.<name>.rds-part-*` file survives only if the agent
// itself dies mid-upload).
import { randomUUID } from 'node:crypto'
import type { Http2ServerRequest } from 'node:http2'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { BODY_BYTES_TRAILER, type FileWriteQuery } from '@rds/protocol'
import type { AgentContext } from '../context.ts'
import { AgentFailure } from '../errors.ts'
import { baseEnv } from '../sandbox/env.ts'
import { locate, refuseRoot } from '../sandbox/file-locate.ts'
import { collect, spawnAsUser } from '../sandbox/spawn.ts'

/** An upload may be slow; the manager bounds it too, and a client that leaves ends it at once. */
const WRITE_TIMEOUT_MS = 6 * 60 * 60_000

export async function handleFileWrite(ctx: AgentContext, req: Http2ServerRequest, q: FileWriteQuery): Promise<void> {
  const at = await locate(q.path, ctx.workspacePaths, { follow: true })
  refuseRoot(at, 'write over')
  const failWith = (e: unknown): AgentFailure => (e instanceof AgentFailure && e.code !== 'internal' ? new AgentFailure(e.code, `${at.pub}: ${e.message}`) : (e as AgentFailure))
  await ctx.fileWorker.call({ op: 'mkdirParent', path: at.real }).catch((e: unknown) => {
    throw failWith(e)
  })
  const part = path.join(path.dirname(at.real), `.${path.basename(at.real).slice(0, 200)}.rds-part-${randomUUID().slice(0, 8)}`)
  const proc = spawnAsUser(ctx, {
    // noclobber: the part file is created, never an existing file (or a link planted under its name) opened.
    argv: [ctx.config.sh, '-c', 'set -C; exec cat >"$1"', 'rds-write', part],
    env: baseEnv(ctx.config),
    cwd: ctx.workspacePaths.base,
    stdinFd: 'pipe',
  })
  const done = collect(proc, { timeoutMs: WRITE_TIMEOUT_MS, maxOutputBytes: 4096 })
  const stdin = proc.child.stdin!
  let ok = false
  try {
    let received = 0
    req.on('data', (c: Buffer) => (received += c.length))
    try {
      await pipeline(req, stdin)
      // An abandoned body may still end normally on the wire (the sender's stack ends a stream
      // before resetting it): only the sender's trailer with the full count confirms it.
      const rst = req.stream.rstCode
      if (req.aborted || (rst !== undefined && rst !== 0)) throw new Error('the client abandoned the upload')
      if (req.trailers?.[BODY_BYTES_TRAILER] !== String(received)) throw new Error('the body ended without its length trailer')
    } catch (e) {
      // The client left (or cat died): kill before the part file could be taken for complete.
      proc.killAll()
      const c = await done
      const why = c.stderr.toString('utf8')
      if (/No space left/i.test(why)) throw new AgentFailure('no_space', `${at.pub}: no space left on the VM's disk`)
      throw new AgentFailure('invalid_request', `${at.pub}: the upload did not complete (${(e as Error).message})`)
    }
    const c = await done
    if (c.exitCode !== 0) {
      const why = c.stderr.toString('utf8').trim().slice(0, 500)
      if (/No space left/i.test(why)) throw new AgentFailure('no_space', `${at.pub}: no space left on the VM's disk`)
      if (/Permission denied/i.test(why)) throw new AgentFailure('permission_denied', `${at.pub}: permission denied (file operations run as the sandbox user, uid 1000)`)
      throw new AgentFailure('internal', `${at.pub}: writing failed: ${c.timedOut ? 'timed out' : why || `exit code ${c.exitCode}`}`)
    }
    await ctx.fileWorker.call({ op: 'commit', tmp: part, path: at.real, mode: q.mode === undefined ? undefined : parseInt(q.mode, 8) }).catch((e: unknown) => {
      throw failWith(e)
    })
    ok = true
  } finally {
    if (!ok) await ctx.fileWorker.call({ op: 'unlink', path: part }).catch(() => {})
  }
}
