// Archives cross the agent channel as plain tar; gzip is the host's job, both ways. Under
// emulation the guest's one vCPU inflated at a third of the speed it extracts plain tar and
// deflated at a tenth of the speed it reads files (docs/benchmarks.md, "Issue 18 — transfers"); the
// host does either at a small fraction of that cost, while the transfer streams through.
// Uploads: a tar.gz body is inflated here; one without gzip's magic number passes through
// untouched (plain tar, or garbage the agent refuses as it always did). The agent still checks
// every entry it receives. Downloads: the agent's plain tar is compressed here when the client
// asked for tar.gz.
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import zlib from 'node:zlib'
import { ARCHIVE_HEAD_BYTES, peekHead, startsWithGzipMagic } from '@rds/protocol'
import { ApiError, Errors } from '../errors.ts'

/**
 * `maxPlainBytes`: the most the inflated stream may hold (the agent's own limit plus framing), so
 * a gzip bomb stops here instead of crossing the channel. A broken gzip stream or a bomb ends the
 * returned stream with the API error to answer (the agent client hands a body's error on as the
 * upload's); the body's own errors (its byte limit) pass through unchanged.
 */
export function inflateUpload(body: Readable, maxPlainBytes: number): Readable {
  async function* plain(): AsyncGenerator<Buffer> {
    const { head, all } = await peekHead(body, ARCHIVE_HEAD_BYTES)
    if (!startsWithGzipMagic(head)) {
      yield* all
      return
    }
    const source = Readable.from(all)
    const gunzip = zlib.createGunzip()
    source.on('error', (e) => gunzip.destroy(e))
    source.pipe(gunzip)
    let n = 0
    try {
      for await (const c of gunzip as AsyncIterable<Buffer>) {
        n += c.length
        if (n > maxPlainBytes) throw Errors.archiveTooLarge(`archive expands to more than ${maxPlainBytes} bytes`)
        yield c
      }
    } catch (e) {
      if (e instanceof ApiError) throw e
      // zlib's own sentence names the fault ("incorrect header check", "unexpected end of file").
      throw new ApiError(400, 'archive_invalid', `unreadable tar.gz archive: ${(e as Error).message}`)
    } finally {
      source.destroy()
      gunzip.destroy()
    }
  }
  // Ended, failed or abandoned (the agent refused early): the source is not read any further.
  const out = Readable.from(plain(), { objectMode: false })
  out.once('close', () => body.destroy())
  return out
}

/**
 * gzip of a plain tar stream from the agent, at level 1: on incompressible data deflate falls back
 * to stored blocks by itself, and the host's cores are the VMs' too.
 */
export function gzipDownload(tar: Readable): Readable {
  const gz = zlib.createGzip({ level: 1 })
  // A failure of the agent's stream ends the gzip stream with it: the client sees a cut body, never a valid short archive.
  pipeline(tar, gz).catch(() => {})
  return gz
}
