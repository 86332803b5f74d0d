// The file API's stream shaping in the manager: a guest's announced length is held to exactly,
// and its watch events become Server-Sent Events only once they match the schema.
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { expect, it } from 'vitest'
import { exactLength } from '../../src/api/exact-length.ts'
import { fileEventsToSse } from '../../src/api/file-events-sse.ts'

async function collect(chunks: (string | Buffer)[], t: NodeJS.ReadWriteStream): Promise<string> {
  let out = ''
  t.on('data', (c: Buffer) => (out += c.toString()))
  await pipeline(Readable.from(chunks.map((c) => Buffer.from(c))), t)
  return out
}

it('passes exactly the announced bytes and fails on more or fewer', async () => {
  expect(await collect(['abc', 'de'], exactLength(5))).toBe('abcde')
  await expect(collect(['abc', 'def'], exactLength(5))).rejects.toThrow(/more than the 5 bytes/)
  await expect(collect(['abc'], exactLength(5))).rejects.toThrow(/3 of the 5 bytes/)
})

it('turns checked event lines into SSE data lines, across chunk and character boundaries', async () => {
  const line = (v: unknown) => `${JSON.stringify(v)}\n`
  const text = line({ type: 'ready' }) + line({ type: 'create', path: '/workspace/é' }) + line({ type: 'bogus' }) + 'not json\n' + line({ type: 'write', path: '/workspace/x', extra: 1 })
  const bytes = Buffer.from(text)
  // Split inside the two-byte é.
  const cut = bytes.indexOf(Buffer.from('é')) + 1
  const out = await collect([bytes.subarray(0, cut), bytes.subarray(cut)], fileEventsToSse())
  expect(out).toBe('data: {"type":"ready"}\n\ndata: {"type":"create","path":"/workspace/é"}\n\n')
})

it('refuses an over-long line instead of holding it', async () => {
  await expect(collect(['x'.repeat(20_000)], fileEventsToSse())).rejects.toThrow(/over-long/)
})
