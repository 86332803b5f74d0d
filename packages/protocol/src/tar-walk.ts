// Reading a tar archive entry by entry, never extracting it: the one walker behind the agent's
// check of uploads and peer trees, the manager's reading of downloads (provider manifest and
// source) and of image bundles. Archives come from the other side of the channel, or from an API
// client, so a failure anywhere (gzip, tar, the caller's own check) stops the walk and destroys
// the input, and the caller gets that failure, never a half-read success.
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import zlib from 'node:zlib'
import tar from 'tar-stream'

export interface TarEntry {
  /** As stored in the archive: not normalized, not trusted. */
  name: string
  /** tar-stream's type: 'file', 'directory', 'symlink', ... */
  type: string | null | undefined
  /** The size the header states. */
  size: number
  /** The entry's content; whatever the caller leaves unread is skipped. */
  body: Readable
}

export async function walkTar(input: Readable, opts: { gzip: boolean }, onEntry: (entry: TarEntry) => Promise<void> | void): Promise<void> {
  const extract = tar.extract()
  // The pipeline's own failure surfaces through the iterator below; this only keeps it handled.
  const feeding = (opts.gzip ? pipeline(input, zlib.createGunzip(), extract) : pipeline(input, extract)).catch((e: unknown) => e)
  try {
    for await (const entry of extract) {
      const h = entry.header
      await onEntry({ name: h.name, type: h.type, size: h.size ?? 0, body: entry as unknown as Readable })
      entry.resume()
    }
  } catch (e) {
    input.destroy()
    extract.destroy()
    throw e
  }
  const failed = await feeding
  if (failed) throw failed as Error
}
