// gzip for downloads, chosen for speed under emulation: deflate's match search is the slowest
// step of a download in a TCG guest, and for data that does not compress (media, archives, random
// bytes) even level 1 spends it for nothing (docs/benchmarks.md, "Issue 18 — transfers"). A
// sample of the stream's start is deflated at level 1; if that pays, the stream is compressed at
// level 1, otherwise it is stored (level 0: still gzip, every reader takes it, at copying speed).
import { PassThrough, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import zlib from 'node:zlib'

const SAMPLE_BYTES = 256 * 1024
/** Compressed to less than this share of its size, the sample says compression pays. */
const WORTH_IT = 0.9

export function chooseLevel(sample: Buffer, packed: Buffer): 0 | 1 {
  return sample.length > 0 && packed.length < sample.length * WORTH_IT ? 1 : 0
}

/** `src` as a gzip stream; destroying the result destroys `src`. */
export function cheapGzip(src: Readable): Readable {
  const out = new PassThrough()
  const head: Buffer[] = []
  let seen = 0
  let ended = false
  const start = (): void => {
    src.off('data', onData)
    src.off('end', onEnd)
    // Nothing at all (tar did not run) stays nothing, not an empty gzip: the caller reports the failure.
    if (ended && seen === 0) return void out.end()
    const sample = Buffer.concat(head)
    zlib.deflateRaw(sample, { level: 1 }, (err, packed) => {
      if (out.destroyed) return
      const gz = zlib.createGzip({ level: err ? 1 : chooseLevel(sample, packed) })
      gz.write(sample)
      if (ended) gz.end()
      const piped = ended ? pipeline(gz, out) : pipeline(src, gz, out)
      piped.catch((e: unknown) => out.destroy(e as Error))
    })
  }
  const onData = (c: Buffer): void => {
    head.push(c)
    seen += c.length
    if (seen < SAMPLE_BYTES) return
    src.pause()
    start()
  }
  const onEnd = (): void => {
    ended = true
    start()
  }
  src.on('data', onData)
  src.once('end', onEnd)
  src.once('error', (e) => out.destroy(e))
  out.once('close', () => src.destroy())
  return out
}
