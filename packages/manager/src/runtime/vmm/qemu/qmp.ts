// A minimal QMP client: one Unix socket, JSON lines, commands matched to replies by id.
// The socket closing is also how we learn that a QEMU we did not spawn has exited.
import net from 'node:net'
import { EventEmitter } from 'node:events'
import { jsonLine, readLines } from '@rds/protocol'

/** Far above any reply we ask for; a longer line means the peer is not the QEMU we started. */
const MAX_LINE_BYTES = 16 * 1024 * 1024

interface Pending {
  resolve: (v: unknown) => void
  reject: (e: Error) => void
}

export class QmpClient extends EventEmitter {
  private readonly sock: net.Socket
  private readonly pending = new Map<string, Pending>()
  private seq = 0
  private closed = false

  private constructor(sock: net.Socket) {
    super()
    this.sock = sock
    readLines(sock, MAX_LINE_BYTES, (line) => this.onLine(line), () => {
      this.closed = true
      for (const p of this.pending.values()) p.reject(new Error('QMP connection closed'))
      this.pending.clear()
      this.emit('close')
    })
  }

  /** Retries while the socket is not listening yet (QEMU creates the file before it listens). */
  static async connect(socketPath: string, timeoutMs = 5000): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      try {
        return await QmpClient.connectOnce(socketPath, Math.max(100, deadline - Date.now()))
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if ((code !== 'ECONNREFUSED' && code !== 'ENOENT') || Date.now() > deadline) throw err
        await new Promise((r) => setTimeout(r, 10))
      }
    }
  }

  private static connectOnce(socketPath: string, timeoutMs: number): Promise<QmpClient> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(socketPath)
      const timer = setTimeout(() => {
        sock.destroy()
        reject(new Error(`QMP connect timeout on ${socketPath}`))
      }, timeoutMs)
      let greeted = ''
      const onData = (d: Buffer) => {
        greeted += d.toString('utf8')
        if (!greeted.includes('\n')) return
        clearTimeout(timer)
        sock.off('data', onData)
        sock.off('error', onError)
        const client = new QmpClient(sock)
        client.execute('qmp_capabilities').then(() => resolve(client), reject)
      }
      const onError = (e: Error) => {
        clearTimeout(timer)
        reject(e)
      }
      sock.on('data', onData)
      sock.on('error', onError)
    })
  }

  get isClosed(): boolean {
    return this.closed
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('QMP connection closed'))
    const id = `c${++this.seq}`
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.sock.write(jsonLine({ execute: command, ...(args ? { arguments: args } : {}), id }))
    })
  }

  close(): void {
    this.sock.destroy()
  }

  private onLine(text: string): void {
    const line = text.trim()
    if (!line) return
    let msg: { id?: string; return?: unknown; error?: { desc?: string }; event?: string }
    try {
      msg = JSON.parse(line)
    } catch {
      return
    }
    if (msg.event) {
      this.emit('event', msg)
      return
    }
    const p = msg.id ? this.pending.get(msg.id) : undefined
    if (!p) return
    this.pending.delete(msg.id!)
    if (msg.error) p.reject(new Error(`QMP: ${msg.error.desc ?? 'error'}`))
    else p.resolve(msg.return)
  }
}
