// Receiving an uploaded archive in one pass: each chunk goes to the root-only spool and to the
// check (entry names, types, count, expanded size) as it arrives, so the bytes are never read back
// for the check. Its first bytes say what it is (gzip's magic number, or plain tar; the manager
// sends plain tar). Extraction reads the spool only once the whole body arrived, its length was
// confirmed and the check passed, so a refused archive writes nothing under /workspace.
import fs from 'node:fs'
import { PassThrough, Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { ARCHIVE_HEAD_BYTES, peekHead, startsWithGzipMagic, type ArchiveFormat } from '@rds/protocol'
import { AgentFailure } from '../errors.ts'
import { validateArchive, type ArchiveLimits } from './validate.ts'

/** A body without gzip's magic number is read as plain tar (and refused if it is not one). */
export function sniffFormat(head: Buffer): ArchiveFormat {
  // Fewer than two bytes is no archive of either kind; the gzip reader says so, as it always did.
  if (head.length < ARCHIVE_HEAD_BYTES) return 'tar.gz'
  return startsWithGzipMagic(head) ? 'tar.gz' : 'tar'
}

/**
 * The body arrives in HTTP/2 chunks of a few KiB; the check, the spool and the stream machinery
 * between them cost JavaScript per chunk, which the agent runs without a JIT (guest/init). In
 * batches of this size that cost is paid a few dozen times per 16 MiB instead of a thousand.
 */
const BATCH_BYTES = 256 * 1024

async function* batched(chunks: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = []
  let held = 0
  for await (const c of chunks) {
    parts.push(c)
    held += c.length
    if (held >= size) {
      yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, held)
      parts = []
      held = 0
    }
  }
  if (held) yield Buffer.concat(parts, held)
}

export interface ReceivedArchive {
  /** Body bytes spooled. */
  bytes: number
  format: ArchiveFormat
  /** The check's verdict on the whole archive; call it after confirming the body is complete. */
  checked(): Promise<void>
}

/**
 * Writes `body` to `spool` (a new file), capped at `maxBytes`, checking the archive on the way.
 * Resolves once the body ended; a failure of the check while the body still arrives stops it.
 */
export async function receiveArchive(body: Readable, spool: string, limits: ArchiveLimits, maxBytes: number): Promise<ReceivedArchive> {
  const { head, all } = await peekHead(body, ARCHIVE_HEAD_BYTES)
  const format = sniffFormat(head)
  // The check's own buffer: a slow check holds the body back rather than growing in memory.
  const toCheck = new PassThrough({ highWaterMark: 1024 * 1024 })
  toCheck.on('error', () => {}) // the check reports its own failure
  let failure: unknown
  const check = validateArchive(toCheck, limits, format).then(
    () => undefined,
    (e: unknown) => {
      failure = e
      throw e
    },
  )
  check.catch(() => {}) // awaited through checked(), or replaced by the body's own failure
  let n = 0
  async function* both(): AsyncGenerator<Buffer> {
    for await (const c of batched(all, BATCH_BYTES)) {
      n += c.length
      if (n > maxBytes) throw new AgentFailure('archive_too_large', `upload body over ${maxBytes} bytes`)
      if (failure) throw failure
      if (!toCheck.destroyed && !toCheck.write(c)) {
        await new Promise<void>((resolve) => {
          toCheck.once('drain', resolve)
          toCheck.once('close', resolve)
        })
      }
      if (failure) throw failure
      yield c
    }
    toCheck.end()
  }
  try {
    await pipeline(Readable.from(both()), fs.createWriteStream(spool, { flags: 'wx', mode: 0o600 }))
  } catch (e) {
    // As a pipeline from the body would: the rest of a refused body is not read.
    toCheck.destroy()
    body.destroy()
    throw e
  }
  return { bytes: n, format, checked: () => check }
}
