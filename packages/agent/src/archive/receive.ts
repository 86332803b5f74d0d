// Receiving an uploaded archive in one pass: the body is decompressed once as it arrives (when it
// is gzip), and the plain tar that comes out goes both to the root-only spool and through the
// archive check. Extraction then reads plain tar from the spool, so nothing is decompressed twice
// and nothing is read back for the check. The spool stays: extraction starts only after the whole
// archive passed, so a refused archive still writes nothing under /workspace.
import fs from 'node:fs'
import { PassThrough, Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import zlib from 'node:zlib'
import type { ArchiveFormat } from '@rds/protocol'
import { AgentFailure } from '../errors.ts'
import { validateArchive, type ArchiveLimits } from './validate.ts'

/** gzip's magic number. A body without it is read as plain tar (and refused if it is not one). */
const GZIP_MAGIC = [0x1f, 0x8b]
/**
 * What a tar adds to its entries' bytes (header, padding, long-name and pax records) that the
 * spool accepts per allowed entry: the expanded stream is capped, so a gzip bomb of filler the
 * check skips cannot fill the VM's disk as root.
 */
const TAR_OVERHEAD_PER_ENTRY = 8 * 1024
const TAR_OVERHEAD_SLACK = 1024 * 1024

export function sniffFormat(head: Buffer): ArchiveFormat {
  // Fewer than two bytes is no archive of either kind; the gzip reader says so, as it always did.
  if (head.length < GZIP_MAGIC.length) return 'tar.gz'
  return head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1] ? 'tar.gz' : 'tar'
}

export interface Received {
  format: ArchiveFormat
  /** Body bytes as they arrived (compressed, for tar.gz). */
  bytes: number
}

/**
 * Writes the plain tar of `body` (tar.gz or tar) to `spool`, a new file, while checking it;
 * resolves once both are done and the archive passed. The body is capped at `maxBodyBytes`, the
 * expanded tar by the limits. A refused archive rejects with the check's failure as soon as it is
 * seen, without reading the rest of the body.
 */
export async function receiveArchive(body: Readable, spool: string, limits: ArchiveLimits, maxBodyBytes: number): Promise<Received> {
  const got: Received = { format: 'tar.gz', bytes: 0 }
  const check = new PassThrough()
  let refused: unknown
  const checking = validateArchive(check, limits, 'tar').catch((e: unknown) => {
    refused = e
    throw e
  })
  // Observed through `refused` and awaited below; never unhandled.
  checking.catch(() => {})

  async function* counted(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const c of src) {
      got.bytes += c.length
      if (got.bytes > maxBodyBytes) throw new AgentFailure('archive_too_large', `upload body over ${maxBodyBytes} bytes`)
      yield c
    }
  }

  async function* decoded(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const it = src[Symbol.asyncIterator]()
    const head: Buffer[] = []
    let seen = 0
    let done = false
    while (seen < GZIP_MAGIC.length) {
      const r = await it.next()
      if (r.done) {
        done = true
        break
      }
      head.push(r.value)
      seen += r.value.length
    }
    got.format = sniffFormat(Buffer.concat(head))
    async function* all(): AsyncGenerator<Buffer> {
      yield* head
      if (done) return
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value
    }
    if (got.format === 'tar') return yield* all()
    const gunzip = zlib.createGunzip()
    // The pipe's failure (a bad gzip stream) surfaces through reading `gunzip` below.
    pipeline(Readable.from(all()), gunzip).catch(() => {})
    yield* gunzip
  }

  const maxExpanded = limits.maxBytes + limits.maxEntries * TAR_OVERHEAD_PER_ENTRY + TAR_OVERHEAD_SLACK
  // The check reads at its own pace: the body waits for it (backpressure), never piles up in memory.
  async function* checked(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    let expanded = 0
    for await (const c of src) {
      expanded += c.length
      if (expanded > maxExpanded) throw new AgentFailure('archive_too_large', `archive expands to more than ${limits.maxBytes} bytes`)
      if (refused) throw refused
      if (!check.write(c)) {
        await Promise.race([new Promise((r) => check.once('drain', r)), checking.catch(() => {})])
        if (refused) throw refused
      }
      yield c
    }
    check.end()
  }

  try {
    await pipeline(body, counted, decoded, checked, fs.createWriteStream(spool, { flags: 'wx', mode: 0o600 }))
    await checking
  } catch (e) {
    // The archive's own refusal is the answer, not the aborted pipe it caused (nor the check's
    // complaint about the input cut off here).
    const first = refused
    check.destroy()
    await checking.catch(() => {})
    if (first) throw first
    if (isZlibError(e)) throw new AgentFailure('archive_invalid', `unreadable tar.gz archive: ${(e as Error).message}`)
    throw e
  }
  return got
}

const isZlibError = (e: unknown): boolean => typeof (e as { code?: unknown })?.code === 'string' && /^Z_/.test((e as { code: string }).code)
