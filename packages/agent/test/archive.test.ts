import { Readable } from 'node:stream'
import zlib from 'node:zlib'
import tar from 'tar-stream'
import { describe, expect, it } from 'vitest'
import { validateArchive } from '../src/archive/validate.ts'
import { AgentFailure } from '../src/errors.ts'

type Entry = Partial<tar.Header> & { name: string; body?: string }

async function tgz(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack()
  const chunks: Buffer[] = []
  const done = new Promise<void>((resolve, reject) => {
    const gz = pack.pipe(zlib.createGzip())
    gz.on('data', (c: Buffer) => chunks.push(c))
    gz.on('end', resolve)
    gz.on('error', reject)
  })
  for (const { body, ...header } of entries) {
    await new Promise<void>((resolve, reject) => pack.entry(header, body ?? '', (err) => (err ? reject(err) : resolve())))
  }
  pack.finalize()
  await done
  return Buffer.concat(chunks)
}

const limits = { maxEntries: 100, maxBytes: 1024 }

async function outcome(buf: Buffer, l = limits): Promise<string> {
  try {
    await validateArchive(Readable.from([buf]), l)
    return 'ok'
  } catch (e) {
    expect(e).toBeInstanceOf(AgentFailure)
    return `${(e as AgentFailure).code}: ${(e as AgentFailure).message}`
  }
}

describe('archive validation', () => {
  it('accepts files and directories', async () => {
    const buf = await tgz([
      { name: './', type: 'directory' },
      { name: 'dir/', type: 'directory' },
      { name: 'dir/a.txt', body: 'hello' },
      { name: 'b.txt', body: 'x' },
    ])
    expect(await outcome(buf)).toBe('ok')
    expect(await validateArchive(Readable.from([buf]), limits)).toEqual({ entries: 4, bytes: 6 })
  })

  it.each([
    ['absolute path', { name: '/etc/passwd', body: 'x' }, /archive_invalid: .*"\/etc\/passwd".*absolute/],
    ['.. component', { name: '../x', body: 'x' }, /archive_invalid: .*"\.\.\/x".*'\.\.'/],
    ['.. in the middle', { name: 'a/../../x', body: 'x' }, /archive_invalid: .*'\.\.'/],
    ['symlink', { name: 'link', type: 'symlink', linkname: '/etc' }, /archive_invalid: .*"link" is a symbolic link/],
    ['hardlink', { name: 'hard', type: 'link', linkname: 'b.txt' }, /archive_invalid: .*"hard" is a hard link/],
    ['character device', { name: 'tty', type: 'character-device', devmajor: 5, devminor: 0 }, /archive_invalid: .*character device/],
    ['block device', { name: 'sda', type: 'block-device', devmajor: 8, devminor: 0 }, /archive_invalid: .*block device/],
    ['fifo', { name: 'pipe', type: 'fifo' }, /archive_invalid: .*FIFO/],
  ] as [string, Entry, RegExp][])('refuses %s', async (_label, entry, expected) => {
    const buf = await tgz([{ name: 'ok.txt', body: 'fine' }, entry])
    expect(await outcome(buf)).toMatch(expected)
  })

  it('refuses too many entries with archive_too_large', async () => {
    const buf = await tgz(Array.from({ length: 6 }, (_, i) => ({ name: `f${i}`, body: '' })))
    expect(await outcome(buf, { maxEntries: 5, maxBytes: 1024 })).toMatch(/^archive_too_large: .*more than 5 entries/)
    expect(await outcome(buf, { maxEntries: 6, maxBytes: 1024 })).toBe('ok')
  })

  it('refuses too many bytes with archive_too_large', async () => {
    const buf = await tgz([
      { name: 'a', body: 'x'.repeat(600) },
      { name: 'b', body: 'y'.repeat(600) },
    ])
    expect(await outcome(buf)).toMatch(/^archive_too_large: .*more than 1024 bytes/)
  })

  it('refuses data that is not a tar.gz', async () => {
    expect(await outcome(Buffer.from('definitely not gzip'))).toMatch(/^archive_invalid: unreadable/)
    const truncated = (await tgz([{ name: 'a', body: 'x'.repeat(500) }])).subarray(0, 20)
    expect(await outcome(truncated)).toMatch(/^archive_invalid: unreadable/)
  })
})
