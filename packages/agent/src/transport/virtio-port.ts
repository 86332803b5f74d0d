// The control channel: a virtio-serial port, opened non-blocking and wrapped in a libuv pipe
// handle so it is a real net.Socket (epoll-driven, and what http2 expects). The kernel gives no
// event when the host connects: while no host is there, reads return EOF at once, so the port is
// closed and reopened with a short backoff until a read yields data.
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { log } from '../log.ts'

const SYS_PORTS = '/sys/class/virtio-ports'
const MIN_BACKOFF_MS = 1
const MAX_BACKOFF_MS = 10

export function findPortDevice(name: string, sysDir = SYS_PORTS): string | undefined {
  let entries: string[]
  try {
    entries = fs.readdirSync(sysDir)
  } catch {
    return undefined
  }
  for (const e of entries) {
    try {
      if (fs.readFileSync(path.join(sysDir, e, 'name'), 'utf8').trim() === name) return path.join('/dev', e)
    } catch {}
  }
  return undefined
}

interface PipeHandle {
  open(fd: number): number
}
interface PipeWrapBinding {
  Pipe: new (type: number) => PipeHandle
  constants: { SOCKET: number }
}

/** A stream on the port's fd; `readable: false` for a write-only side (port-reader.ts has the port read in C). */
export function wrapFd(fd: number, { readable = true }: { readable?: boolean } = {}): net.Socket {
  // Internal binding: the only way to get a stream handle on an fd that is neither a socket nor
  // a FIFO. Checked here so a Node upgrade that removes it fails loudly at start-up.
  const binding = (process as unknown as { binding(name: string): PipeWrapBinding }).binding('pipe_wrap')
  const handle = new binding.Pipe(binding.constants.SOCKET)
  const err = handle.open(fd)
  if (err) throw new Error(`pipe_wrap open failed: ${err}`)
  return new net.Socket({ handle, readable, writable: true } as unknown as net.SocketConstructorOpts)
}

/**
 * Opens the port for one session after another, forever: at once after a session that heard a
 * host, after a growing pause otherwise (no host yet, or the fd still being torn down: EBUSY).
 * `session` owns the fd and calls `ended` once it is closed.
 */
export function keepPortOpen(portName: string, session: (fd: number, ended: (heardHost: boolean) => void) => void, maxBackoffMs = MAX_BACKOFF_MS): void {
  let backoff = MIN_BACKOFF_MS
  let lastError = ''
  const retry = (): void => {
    setTimeout(open, backoff)
    backoff = Math.min(backoff * 2, maxBackoffMs)
  }
  const open = (): void => {
    const dev = findPortDevice(portName)
    let fd: number
    try {
      if (!dev) throw new Error('not present')
      fd = fs.openSync(dev, fs.constants.O_RDWR | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY)
    } catch (e) {
      // Log changes only, not every retry.
      const msg = (e as Error).message
      if (msg !== lastError) log.warn(`virtio port ${portName}: ${msg}`)
      lastError = msg
      retry()
      return
    }
    lastError = ''
    session(fd, (heardHost) => {
      if (!heardHost) return retry()
      backoff = MIN_BACKOFF_MS
      setImmediate(open)
    })
  }
  open()
}

/** Keeps one connection on the port alive forever, reopening after every disconnect. */
export function servePort(portName: string, onSocket: (sock: net.Socket) => void): void {
  keepPortOpen(portName, (fd, ended) => {
    const sock = wrapFd(fd)
    let gotData = false
    sock.once('data', () => (gotData = true))
    sock.once('close', () => ended(gotData))
    onSocket(sock)
  })
}
