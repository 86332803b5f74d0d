import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import zlib from 'node:zlib'
import tar from 'tar-stream'
import { afterAll, describe, expect, it } from 'vitest'
import { cheapGzip, chooseLevel } from '../src/archive/cheap-gzip.ts'
import { receiveArchive, sniffFormat } from '../src/archive/receive.ts'
import { AgentFailure } from '../src/errors.ts'

type Entry = Partial<tar.Header> & { name: string; body?: string | Buffer }

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack()
  const chunks: Buffer[] = []
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => void chunks.push(c as Buffer))
    pack.on('end', resolve)
    pack.on('error', reject)
  })
  for (const { body, ...header } of entries) {
    await new Promise<void>((resolve, reject) => pack.entry(header, body ?? '', (err) => (err ? reject(err) : resolve())))
  }
  pack.finalize()
  await done
  return Buffer.concat(chunks)
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-receive-'))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
const limits = { maxEntries: 100, maxBytes: 64 * 1024 }

/** Chunks of `size` bytes, as the channel delivers them. */
const chunked = (buf: Buffer, size = 1000): Readable => Readable.from(Array.from({ length: Math.ceil(buf.length / size) }, (_, i) => buf.subarray(i * size, (i + 1) * size)))

/** The upload handler's steps: spool and check in one pass, then the check's verdict. */
async function receive(body: Buffer, l = limits, maxBody = 1024 * 1024): Promise<{ outcome: string; spool: Buffer | undefined }> {
  const spool = path.join(dir, crypto.randomUUID())
  try {
    const { bytes, format, checked } = await receiveArchive(chunked(body), spool, l, maxBody)
    await checked()
    return { outcome: `ok ${format} ${bytes}`, spool: fs.readFileSync(spool) }
  } catch (e) {
    expect(e).toBeInstanceOf(AgentFailure)
    return { outcome: `${(e as AgentFailure).code}: ${(e as AgentFailure).message}`, spool: fs.existsSync(spool) ? fs.readFileSync(spool) : undefined }
  }
}

describe('receiving an upload', () => {
  it('tells gzip from plain tar by the magic number', () => {
    expect(sniffFormat(Buffer.from([0x1f, 0x8b, 8]))).toBe('tar.gz')
    expect(sniffFormat(Buffer.from('file.txt\0'))).toBe('tar')
    // Too short to be either: read as gzip, which refuses it as it always did.
    expect(sniffFormat(Buffer.from([0x1f]))).toBe('tar.gz')
  })

  it('spools a tar.gz and a plain tar as they came, and tells them apart', async () => {
    const t = await tarOf([{ name: 'dir/', type: 'directory' }, { name: 'dir/a.txt', body: 'hello' }, { name: 'b.bin', body: crypto.randomBytes(20_000) }])
    const gz = zlib.gzipSync(t)
    const fromGz = await receive(gz)
    expect(fromGz.outcome).toBe(`ok tar.gz ${gz.length}`)
    expect(fromGz.spool!.equals(gz)).toBe(true)
    const fromTar = await receive(t)
    expect(fromTar.outcome).toBe(`ok tar ${t.length}`)
    expect(fromTar.spool!.equals(t)).toBe(true)
  })

  it('spools a body of many small chunks byte for byte (they are handled in batches)', async () => {
    // Several full batches and a part of one, in chunks that divide none of them.
    const t = await tarOf([{ name: 'a.bin', body: crypto.randomBytes(700_001) }, { name: 'b.txt', body: 'tail' }])
    const r = await receive(t, { maxEntries: 100, maxBytes: 1024 * 1024 }, 4 * 1024 * 1024)
    expect(r.outcome).toBe(`ok tar ${t.length}`)
    expect(r.spool!.equals(t)).toBe(true)
  })

  // The same rules for both encodings: the new plain-tar path must refuse what tar.gz refuses.
  describe.each(['tar', 'tar.gz'] as const)('hostile %s', (format) => {
    const encode = (t: Buffer) => (format === 'tar.gz' ? zlib.gzipSync(t) : t)
    it.each([
      ['absolute path', { name: '/etc/passwd', body: 'x' }, /^archive_invalid: .*absolute/],
      ['.. component', { name: 'a/../../x', body: 'x' }, /^archive_invalid: .*'\.\.'/],
      ['symlink', { name: 'link', type: 'symlink', linkname: '/etc' }, /^archive_invalid: .*symbolic link/],
      ['hardlink', { name: 'hard', type: 'link', linkname: 'ok.txt' }, /^archive_invalid: .*hard link/],
      ['character device', { name: 'tty', type: 'character-device', devmajor: 5, devminor: 0 }, /^archive_invalid: .*character device/],
      ['fifo', { name: 'pipe', type: 'fifo' }, /^archive_invalid: .*FIFO/],
    ] as [string, Entry, RegExp][])('refuses %s', async (_label, entry, expected) => {
      const r = await receive(encode(await tarOf([{ name: 'ok.txt', body: 'fine' }, entry])))
      expect(r.outcome).toMatch(expected)
    })

    it('refuses too many entries and too many bytes', async () => {
      const many = encode(await tarOf(Array.from({ length: 6 }, (_, i) => ({ name: `f${i}`, body: '' }))))
      expect((await receive(many, { maxEntries: 5, maxBytes: 1024 })).outcome).toMatch(/^archive_too_large: .*more than 5 entries/)
      const big = encode(await tarOf([{ name: 'a', body: 'x'.repeat(2000) }]))
      expect((await receive(big, { maxEntries: 5, maxBytes: 1024 })).outcome).toMatch(/^archive_too_large: .*more than 1024 bytes/)
    })

    it('refuses a body over its cap', async () => {
      const t = encode(await tarOf([{ name: 'a', body: crypto.randomBytes(5000) }]))
      expect((await receive(t, limits, 4000)).outcome).toMatch(/^archive_too_large: upload body over 4000 bytes/)
    })

    it('refuses what is not an archive', async () => {
      expect((await receive(encode(Buffer.from('definitely not a tar archive, not even close'.repeat(20))))).outcome).toMatch(/^archive_invalid: unreadable/)
    })
  })

  it('stops reading a body as soon as the check refuses it, with the check\'s reason', async () => {
    const t = await tarOf([{ name: '/etc/evil', body: 'x' }, { name: 'big.bin', body: crypto.randomBytes(3 * 1024 * 1024) }])
    let read = 0
    const body = Readable.from((function* () {
      for (let i = 0; i < t.length; i += 16384) {
        read += 16384
        yield t.subarray(i, i + 16384)
      }
    })())
    const spool = path.join(dir, crypto.randomUUID())
    const err = await receiveArchive(body, spool, { maxEntries: 100, maxBytes: 8 << 20 }, 16 << 20).then(async (r) => r.checked()).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AgentFailure)
    expect((err as AgentFailure).message).toMatch(/absolute path/)
    expect(read).toBeLessThan(t.length / 2)
  })

  it('refuses a truncated or corrupt gzip stream', async () => {
    const gz = zlib.gzipSync(await tarOf([{ name: 'a', body: crypto.randomBytes(5000) }]))
    expect((await receive(gz.subarray(0, gz.length - 100))).outcome).toMatch(/^archive_invalid: unreadable tar.gz archive/)
    const bad = Buffer.from(gz)
    bad[gz.length - 5] ^= 0xff // the length in gzip's trailer
    expect((await receive(bad)).outcome).toMatch(/^archive_invalid: unreadable tar.gz archive/)
  })

})

describe('cheap gzip for downloads', () => {
  it('compresses what compresses and stores what does not', () => {
    const text = Buffer.from('hello world, again and again. '.repeat(5000))
    expect(chooseLevel(text, zlib.deflateRawSync(text, { level: 1 }))).toBe(1)
    const noise = crypto.randomBytes(100_000)
    expect(chooseLevel(noise, zlib.deflateRawSync(noise, { level: 1 }))).toBe(0)
  })

  it.each([
    ['compressible', Buffer.from('a tar of source files '.repeat(50_000)), true],
    ['incompressible', crypto.randomBytes(1024 * 1024), false],
    ['smaller than a sample', Buffer.from('tiny'), true],
  ])('round-trips %s data', async (_label, data, shrinks) => {
    const chunks: Buffer[] = []
    for await (const c of cheapGzip(chunked(data, 16 * 1024))) chunks.push(c as Buffer)
    const gz = Buffer.concat(chunks)
    expect(zlib.gunzipSync(gz).equals(data)).toBe(true)
    if (shrinks && data.length > 1000) expect(gz.length).toBeLessThan(data.length / 2)
    if (!shrinks) expect(gz.length).toBeGreaterThanOrEqual(data.length)
  })

  it('gives nothing for nothing', async () => {
    const chunks: Buffer[] = []
    for await (const c of cheapGzip(Readable.from([]))) chunks.push(c as Buffer)
    expect(chunks).toEqual([])
  })
})
