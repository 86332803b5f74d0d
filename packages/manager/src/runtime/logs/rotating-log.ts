// A log file whose disk use is bounded whatever is written to it: `file` grows to half the
// budget, then becomes `file.1` (replacing the previous one) and a new `file` starts. Writes are
// queued and done off the event loop; when the disk cannot keep up, new data is dropped (and the
// loss noted in the file) instead of piling up in memory: a writer never waits on this log.
import fs from 'node:fs'
import fsp from 'node:fs/promises'

/** What may wait in memory for the disk; beyond it, data is dropped. */
const MAX_PENDING_BYTES = 1024 * 1024

export const rotatedName = (file: string) => `${file}.1`

export class RotatingLog {
  private readonly file: string
  private readonly maxFileBytes: number
  private fh: fsp.FileHandle | undefined
  private size = 0
  private pending: Buffer[] = []
  private pendingBytes = 0
  private dropped = 0
  private writing = false
  private closed = false

  /** `maxBytes` bounds the two files together. */
  constructor(file: string, maxBytes: number) {
    this.file = file
    this.maxFileBytes = Math.max(1, Math.floor(maxBytes / 2))
  }

  write(chunk: Buffer): void {
    if (this.closed) return
    if (this.pendingBytes + chunk.length > MAX_PENDING_BYTES) {
      this.dropped += chunk.length
      return
    }
    this.pending.push(chunk)
    this.pendingBytes += chunk.length
    if (!this.writing) void this.flush()
  }

  /** Stops accepting data; resolves once what was queued is on disk. */
  async close(): Promise<void> {
    this.closed = true
    while (this.writing) await new Promise((r) => setImmediate(r))
    await this.flush()
    await this.fh?.close().catch(() => {})
    this.fh = undefined
  }

  private async flush(): Promise<void> {
    if (this.writing) return
    this.writing = true
    try {
      while (this.pending.length > 0 || this.dropped > 0) {
        let data = Buffer.concat(this.pending)
        this.pending = []
        this.pendingBytes = 0
        if (this.dropped > 0) {
          data = Buffer.concat([data, Buffer.from(`\n[run-dat-sheesh: ${this.dropped} bytes of output dropped, the log could not keep up]\n`)])
          this.dropped = 0
        }
        await this.append(data)
      }
    } catch {
      // A log that cannot be written (disk full, VM directory removed) loses this batch, nothing else.
    } finally {
      this.writing = false
    }
  }

  private async append(data: Buffer): Promise<void> {
    let rest = data
    while (rest.length > 0) {
      if (!this.fh) {
        this.fh = await fsp.open(this.file, 'a', 0o600)
        this.size = (await this.fh.stat()).size
      }
      if (this.size >= this.maxFileBytes) {
        await this.rotate()
        continue
      }
      // Never more than the room left: a single huge chunk is split across rotations, and a
      // chunk larger than both files keeps only its newest part.
      const room = this.maxFileBytes - this.size
      if (rest.length > 2 * this.maxFileBytes) rest = rest.subarray(rest.length - 2 * this.maxFileBytes)
      const part = rest.subarray(0, room)
      await this.fh.write(part)
      this.size += part.length
      rest = rest.subarray(part.length)
    }
  }

  private async rotate(): Promise<void> {
    await this.fh?.close()
    this.fh = undefined
    await fsp.rename(this.file, rotatedName(this.file))
  }
}

/** The last `maxBytes` of a rotating log (the rotated file first, then the current one). */
export async function readTail(file: string, maxBytes: number): Promise<{ data: Buffer; truncated: boolean; mtime: Date | undefined }> {
  const parts: Buffer[] = []
  let need = maxBytes
  let truncated = false
  let mtime: Date | undefined
  for (const f of [file, rotatedName(file)]) {
    if (need <= 0) {
      truncated ||= fs.existsSync(f)
      break
    }
    let fh
    try {
      fh = await fsp.open(f, 'r')
    } catch {
      continue
    }
    try {
      const st = await fh.stat()
      mtime ??= st.mtime
      const start = Math.max(0, st.size - need)
      const buf = Buffer.alloc(st.size - start)
      await fh.read(buf, 0, buf.length, start)
      parts.unshift(buf)
      need -= buf.length
      if (start > 0) truncated = true
    } finally {
      await fh.close()
    }
  }
  return { data: Buffer.concat(parts), truncated, mtime }
}
