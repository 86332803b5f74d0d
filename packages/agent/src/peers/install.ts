// Replaces /workspace/peers with the tree the manager generated (index, manifests, READMEs,
// proxies, mounted sources). The result is root-owned and read-only to user code.
//
// The user owns /workspace, so anything under it may be a symlink planted to steer a root write.
// Root therefore never writes below /workspace: the archive is validated (files and directories
// only), extracted into a root-only staging directory on the same filesystem, made read-only
// there, and then swapped in with rename(2), which acts on the directory entry itself and never
// follows a symlink in its last component. Whatever was at the target before is renamed into the
// root-only staging area first and deleted there (rm does not follow symlinks).
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import fs from 'node:fs'
import type { Http2ServerRequest } from 'node:http2'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { promisify } from 'node:util'
import { validateArchive } from '../archive/validate.ts'
import type { AgentContext } from '../context.ts'
import { AgentFailure } from '../errors.ts'

const run = promisify(execFile)
const MAX_BYTES = 256 * 1024 * 1024
const MAX_ENTRIES = 50_000
/** The user may race the swap by recreating the target; a few retries win against that. */
const SWAP_ATTEMPTS = 5

export async function handlePeersInstall(ctx: AgentContext, req: Http2ServerRequest): Promise<void> {
  const stagingRoot = path.join(path.dirname(ctx.spoolDir), 'peers-staging')
  fs.mkdirSync(stagingRoot, { recursive: true, mode: 0o700 })
  const id = randomUUID()
  const spool = path.join(ctx.spoolDir, `peers-${id}.tar.gz`)
  const stage = path.join(stagingRoot, `new-${id}`)
  try {
    await pipeline(req, fs.createWriteStream(spool, { flags: 'wx', mode: 0o600 }))
    await validateArchive(fs.createReadStream(spool), { maxEntries: MAX_ENTRIES, maxBytes: MAX_BYTES })
    fs.mkdirSync(stage, { mode: 0o700 })
    await run(ctx.config.tar, ['-xzf', spool, '--no-same-owner', '--no-same-permissions', '-C', stage])
    makeReadOnly(stage)
    swapIn(stage, ctx.config.peersDir, stagingRoot)
  } catch (e) {
    if (e instanceof AgentFailure) throw e
    throw new AgentFailure('internal', `installing peer files failed: ${(e as Error).message}`)
  } finally {
    fs.rmSync(spool, { force: true })
    fs.rmSync(stage, { recursive: true, force: true })
  }
}

/** root:root, directories 0555 and files 0444 (the stage holds only what the archive check allowed). */
function makeReadOnly(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) makeReadOnly(p)
    else if (e.isFile()) {
      chownRoot(p)
      fs.chmodSync(p, 0o444)
    } else fs.rmSync(p, { force: true })
  }
  chownRoot(dir)
  fs.chmodSync(dir, 0o555)
}

/** Host-side agent tests run unprivileged; in the guest the agent is always root. */
const chownRoot = (p: string): void => {
  if (process.getuid?.() === 0) fs.chownSync(p, 0, 0)
}

function swapIn(stage: string, target: string, stagingRoot: string): void {
  for (let i = 0; i < SWAP_ATTEMPTS; i++) {
    const old = path.join(stagingRoot, `old-${randomUUID()}`)
    try {
      fs.renameSync(target, old)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
    }
    // The old tree is read-only (0555 directories): make it deletable, without following links.
    if (fs.existsSync(old)) removeTree(old)
    try {
      fs.renameSync(stage, target)
      return
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code !== 'EEXIST' && code !== 'ENOTEMPTY' && code !== 'ENOTDIR') throw e
    }
  }
  throw new AgentFailure('internal', `cannot replace ${target}: it keeps being recreated`)
}

function removeTree(p: string): void {
  const st = fs.lstatSync(p)
  if (st.isDirectory()) {
    fs.chmodSync(p, 0o700)
    for (const e of fs.readdirSync(p)) removeTree(path.join(p, e))
    fs.rmdirSync(p)
  } else fs.unlinkSync(p)
}
