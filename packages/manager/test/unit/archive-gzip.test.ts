// Uploads are inflated on the host (services/archive-gzip.ts): what reaches the agent, and the
// API errors a broken or oversized gzip stream ends with. Real zlib, real streams.
import crypto from 'node:crypto'
import { Readable } from 'node:stream'
import zlib from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { ApiError, Errors } from '../../src/errors.ts'
import { gzipDownload, inflateUpload } from '../../src/services/archive-gzip.ts'

async function drain(r: Readable): Promise<Buffer> {
  const out: Buffer[] = []
  for await (const c of r) out.push(c as Buffer)
  return Buffer.concat(out)
}

/** A body delivered in small pieces, as a socket would, counting what was read from it. */
function chunked(buf: Buffer, size = 7): { body: Readable; read: () => number } {
  let read = 0
  const body = Readable.from(
    (function* () {
      for (let i = 0; i < buf.length; i += size) {
        read += Math.min(size, buf.length - i)
        yield buf.subarray(i, i + size)
      }
    })(),
    { objectMode: false },
  )
  return { body, read: () => read }
}

describe('inflateUpload', () => {
  it('inflates a gzip body, even when its magic number arrives split over two chunks', async () => {
    const plain = crypto.randomBytes(200_000)
    expect((await drain(inflateUpload(chunked(zlib.gzipSync(plain), 1).body, 1 << 20))).equals(plain)).toBe(true)
    expect((await drain(inflateUpload(chunked(zlib.gzipSync(plain), 65536).body, 1 << 20))).equals(plain)).toBe(true)
  })

  it('passes a body without gzip\'s magic number through untouched, however short', async () => {
    for (const b of [Buffer.alloc(0), Buffer.from([0x1f]), Buffer.from([1, 2, 3]), crypto.randomBytes(5000)]) {
      if (b.length > 0) b[0] = b[0] === 0x1f ? 0x20 : b[0]! // never a gzip start
      expect((await drain(inflateUpload(chunked(b).body, 10))).equals(b)).toBe(true)
    }
  })

  it('ends with 400 archive_invalid on a broken gzip stream, naming zlib\'s reason', async () => {
    const gz = zlib.gzipSync(crypto.randomBytes(50_000))
    const cut = gz.subarray(0, gz.length - 100)
    await expect(drain(inflateUpload(chunked(cut).body, 1 << 20))).rejects.toMatchObject({ status: 400, code: 'archive_invalid', message: expect.stringMatching(/^unreadable tar\.gz archive: .*end of file/) })
    const garbled = Buffer.concat([Buffer.from([0x1f, 0x8b]), crypto.randomBytes(100)])
    await expect(drain(inflateUpload(chunked(garbled).body, 1 << 20))).rejects.toMatchObject({ status: 400, code: 'archive_invalid' })
  })

  it('stops a gzip bomb at the cap with 413 archive_too_large, without reading the rest of the body', async () => {
    // 256 MiB of zeros in ~260 KB; the cap is 1 MiB of output, a few KB of input.
    const zeros = Buffer.alloc(1 << 20)
    const bomb = await drain(Readable.from((function* () { for (let i = 0; i < 256; i++) yield zeros })(), { objectMode: false }).pipe(zlib.createGzip()))
    const src = chunked(bomb, 1024)
    await expect(drain(inflateUpload(src.body, 1 << 20))).rejects.toMatchObject({ status: 413, code: 'archive_too_large', message: `archive expands to more than ${1 << 20} bytes` })
    expect(src.read()).toBeLessThan(bomb.length / 2)
  })

  it('hands on the body\'s own error (its byte limit) unchanged, in both modes', async () => {
    for (const start of [Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.from('plain')]) {
      const limit = Errors.payloadTooLarge(10)
      const body = new Readable({ read() {} })
      body.push(start)
      setImmediate(() => body.destroy(limit))
      const err = await drain(inflateUpload(body, 1 << 20)).catch((e: unknown) => e)
      expect(err).toBe(limit)
      expect(err).toBeInstanceOf(ApiError)
    }
  })
})

describe('gzipDownload', () => {
  it('gives the plain stream back as one gzip stream, compressible or not', async () => {
    for (const plain of [Buffer.alloc(300_000, 'a'), crypto.randomBytes(300_000)]) {
      const gz = await drain(gzipDownload(chunked(plain, 65536).body))
      expect(zlib.gunzipSync(gz).equals(plain)).toBe(true)
      // Level 1 still compresses text; random bytes cost only deflate's framing.
      if (plain[0] === 0x61) expect(gz.length).toBeLessThan(plain.length / 50)
      else expect(gz.length).toBeLessThan(plain.length * 1.01)
    }
  })

  it('fails with the agent stream instead of ending as a shorter, valid archive', async () => {
    const tar = new Readable({ read() {} })
    tar.push(crypto.randomBytes(10_000))
    setImmediate(() => tar.destroy(new Error('agent stream reset')))
    await expect(drain(gzipDownload(tar))).rejects.toThrow('agent stream reset')
  })
})
