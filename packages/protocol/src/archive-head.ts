// An archive stream's first bytes say what it is: gzip's magic number, or anything else (plain
// tar, or bytes the tar reader then refuses). Both ends of the agent channel look before they
// read: the manager to inflate a tar.gz upload, the agent to pick its reader.

const GZIP_MAGIC = [0x1f, 0x8b] as const

/** True when `head` starts with gzip's magic number (never for fewer than two bytes). */
export function startsWithGzipMagic(head: Uint8Array): boolean {
  return head.length >= GZIP_MAGIC.length && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1]
}

/** How many bytes `startsWithGzipMagic` needs. */
export const ARCHIVE_HEAD_BYTES = GZIP_MAGIC.length

/**
 * Reads chunks of `body` until it holds `n` bytes (fewer when the stream ends first), without
 * losing them: `all` yields the whole stream from its first byte, the peeked chunks included.
 */
export async function peekHead(body: AsyncIterable<Buffer>, n: number): Promise<{ head: Buffer; all: AsyncGenerator<Buffer> }> {
  const it = body[Symbol.asyncIterator]()
  const peeked: Buffer[] = []
  let got = 0
  while (got < n) {
    const r = await it.next()
    if (r.done) break
    peeked.push(r.value)
    got += r.value.length
  }
  async function* all(): AsyncGenerator<Buffer> {
    yield* peeked
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value
  }
  return { head: Buffer.concat(peeked), all: all() }
}
