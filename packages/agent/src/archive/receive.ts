// Receiving an uploaded archive: the body goes to the root-only spool as it arrives, and its first
// bytes say what it is (gzip's magic number, or plain tar). The check and the extraction read the
// spool afterwards, so a refused archive writes nothing under /workspace.
//
// A one-pass version (gunzip and check while the body arrives, spool plain tar) exists in this
// branch's history; it is not used until it has been measured (docs/benchmarks.md, "Issue 18 —
// transfers").
import fs from 'node:fs'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ArchiveFormat } from '@rds/protocol'
import { AgentFailure } from '../errors.ts'

/** gzip's magic number. A body without it is read as plain tar (and refused if it is not one). */
const GZIP_MAGIC = [0x1f, 0x8b]

export function sniffFormat(head: Buffer): ArchiveFormat {
  // Fewer than two bytes is no archive of either kind; the gzip reader says so, as it always did.
  if (head.length < GZIP_MAGIC.length) return 'tar.gz'
  return head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1] ? 'tar.gz' : 'tar'
}

/** The format of a spooled archive, from its first bytes. */
export function spooledFormat(spool: string): ArchiveFormat {
  const fd = fs.openSync(spool, 'r')
  try {
    const head = Buffer.alloc(GZIP_MAGIC.length)
    return sniffFormat(head.subarray(0, fs.readSync(fd, head, 0, head.length, 0)))
  } finally {
    fs.closeSync(fd)
  }
}

/** Writes `body` to `spool` (a new file), capped at `maxBytes`; resolves to the bytes received. */
export async function spoolBody(body: Readable, spool: string, maxBytes: number): Promise<number> {
  let n = 0
  async function* capped(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const c of src) {
      n += c.length
      if (n > maxBytes) throw new AgentFailure('archive_too_large', `upload body over ${maxBytes} bytes`)
      yield c
    }
  }
  await pipeline(body, capped, fs.createWriteStream(spool, { flags: 'wx', mode: 0o600 }))
  return n
}
