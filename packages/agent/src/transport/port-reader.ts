// The control port with its receive side read by a small C program (guest/init/rds-portpipe.c).
// The stock guest kernel hands a reader of the port one page (4 KiB) per read(); reading it from
// Node costs a syscall and a JavaScript callback per page, which capped uploads at ~6 MB/s under
// emulation. The reader gathers up to 256 KiB per write to a socket the agent reads. The agent
// writes to the port itself: a second hop on the way out measured 15–25 % slower downloads.
// One reader per host session; the port is opened, handed over, and closed when the session ends,
// as servePort does, so the host sees the guest close and reopen the port between sessions.
import { spawn } from 'node:child_process'
import { Duplex, type Readable, type Writable } from 'node:stream'
import { log } from '../log.ts'
import { keepPortOpen, wrapFd } from './virtio-port.ts'

/** The longest pause between attempts to start a reader that keeps failing. */
const READER_RETRY_MAX_MS = 1000

/** One stream from two: what the reader forwards, and writes straight to the port. */
export class SplitPort extends Duplex {
  private readonly rx: Readable
  private readonly tx: Writable

  constructor(rx: Readable, tx: Writable) {
    super({ allowHalfOpen: false })
    this.rx = rx
    this.tx = tx
    rx.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) rx.pause()
    })
    rx.on('end', () => this.push(null))
    rx.on('error', (e) => this.destroy(e))
    tx.on('error', (e) => this.destroy(e))
  }

  override _read(): void {
    this.rx.resume()
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.tx.write(chunk, cb)
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (e?: Error | null) => void): void {
    this.tx.cork()
    for (let i = 0; i < chunks.length - 1; i++) this.tx.write(chunks[i]!.chunk)
    this.tx.write(chunks[chunks.length - 1]!.chunk, cb)
    this.tx.uncork()
  }

  // The port cannot be shut down for writing (ENOTSOCK); the session's end destroys it.
  override _final(cb: () => void): void {
    cb()
  }

  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    this.rx.destroy()
    this.tx.destroy()
    cb(err)
  }
}

/**
 * Starts a session on an open port: a reader takes its receive side, the returned stream writes
 * to it. `onFree` runs once the reader and the stream are both gone (the port can be opened
 * again), with whether a host sent anything.
 */
export function startPortSession(fd: number, readerBin: string, onFree: (sawHost: boolean) => void): Duplex {
  const reader = spawn(readerBin, [], { stdio: ['ignore', 'pipe', 'inherit', fd] })
  const sock = new SplitPort(reader.stdout!, wrapFd(fd, { readable: false }))
  let sawHost = false
  reader.stdout!.once('data', () => (sawHost = true))
  let pending = 2
  const done = (): void => {
    if (--pending === 0) onFree(sawHost)
  }
  let readerEnded = false
  const readerEnd = (why: string | undefined): void => {
    if (readerEnded) return
    readerEnded = true
    if (why) log.warn(`control port reader: ${why}`)
    sock.destroy()
    done()
  }
  reader.once('exit', (code, signal) => readerEnd(code === 0 ? undefined : `exited (${code ?? signal})`))
  // A reader that could not start never exits.
  reader.once('error', (e) => readerEnd(e.message))
  sock.once('close', () => {
    reader.kill('SIGKILL')
    done()
  })
  return sock
}

/**
 * Keeps one session on the port alive forever, with a fresh reader for each. The reader waits
 * for a host itself, so a session that heard none means the reader failed: retried slowly.
 */
export function servePortWithReader(portName: string, readerBin: string, onSocket: (sock: Duplex) => void): void {
  keepPortOpen(portName, (fd, ended) => onSocket(startPortSession(fd, readerBin, ended)), READER_RETRY_MAX_MS)
}
