// A live connection to one background process over the API's attach WebSocket: its output as it
// comes, input to its stdin, terminal resizes and signals, and its exit. The connection is opened
// with a single-use ticket (POST …/attach-ticket) because the standard WebSocket cannot send the
// X-API-Key header; the key never appears in a URL.
import { RdsApiError, RdsConnectionError } from './errors.ts'
import type { Http } from './http.ts'
import type { ProcessSignal } from './types.ts'

/** A WebSocket constructor of the standard shape (global in Node ≥ 22, Deno, Bun; `ws` elsewhere). */
export type WebSocketConstructor = new (url: string) => WebSocket

export interface AttachOptions {
  /** Every output byte (stdout and stderr alike; a terminal's screen). */
  onData?: (bytes: Uint8Array) => void
  /** First output byte wanted (default 0: what the process still keeps, then new output). */
  since?: number
  /** Default: the runtime's global WebSocket. */
  webSocket?: WebSocketConstructor
  /** Closing the connection (the process goes on). */
  signal?: AbortSignal
}

export interface ProcessExit {
  exitCode: number
}

/** An attach in progress. Closing it detaches: the process keeps running. */
export class ProcessConnection {
  readonly pid: number
  /** Resolves with the exit code when the process ends; rejects when the connection fails first. */
  readonly exited: Promise<ProcessExit>
  private readonly socket: WebSocket

  private constructor(pid: number, socket: WebSocket, exited: Promise<ProcessExit>) {
    this.pid = pid
    this.socket = socket
    this.exited = exited
  }

  /** Opens the connection; resolves once it is open. */
  static async open(http: Http, vmId: string, pid: number, o: AttachOptions = {}): Promise<ProcessConnection> {
    const Ctor = o.webSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    if (!Ctor) throw new Error('This runtime has no WebSocket (Node < 22): pass { webSocket } (e.g. the `ws` package\'s WebSocket)')
    const base = `/v1/vms/${encodeURIComponent(vmId)}/processes/${pid}`
    const { ticket } = await http.json<{ ticket: string }>('POST', `${base}/attach-ticket`, undefined, { signal: o.signal })
    const url = new URL(`${http.baseUrl}${base}/attach`)
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
    url.searchParams.set('ticket', ticket)
    if (o.since) url.searchParams.set('since', String(o.since))
    const socket = new Ctor(url.toString())
    socket.binaryType = 'arraybuffer'

    let failure: Error | undefined
    let exit: ProcessExit | undefined
    const exited = new Promise<ProcessExit>((resolve, reject) => {
      socket.addEventListener('message', (ev: MessageEvent) => {
        if (typeof ev.data !== 'string') return o.onData?.(new Uint8Array(ev.data as ArrayBuffer))
        const msg = JSON.parse(ev.data) as { type: string; exitCode?: number; code?: string; message?: string }
        if (msg.type === 'exit') exit = { exitCode: msg.exitCode ?? -1 }
        else if (msg.type === 'error') failure = new RdsApiError(0, msg.code ?? 'attach_failed', msg.message ?? 'the attach failed')
      })
      socket.addEventListener('close', (ev: CloseEvent) => {
        if (exit) return resolve(exit)
        // 4000 + HTTP status: the attach was refused (e.g. 4404, the process or VM is gone).
        if (failure instanceof RdsApiError && ev.code >= 4000) failure = new RdsApiError(ev.code - 4000, failure.code, failure.message)
        reject(failure ?? new RdsConnectionError(ev.code === 1000 ? 'the process ended without an exit status' : `the attach connection closed (${ev.code})`))
      })
    })
    // A caller that only detaches never reads `exited`: its rejection must not be unhandled.
    exited.catch(() => {})
    await new Promise<void>((resolve, reject) => {
      const opened = () => {
        socket.removeEventListener('error', failed)
        resolve()
      }
      const failed = () => {
        socket.removeEventListener('open', opened)
        reject(new RdsConnectionError(`cannot open the attach WebSocket to ${http.baseUrl}`))
      }
      socket.addEventListener('open', opened, { once: true })
      socket.addEventListener('error', failed, { once: true })
    })
    o.signal?.addEventListener('abort', () => socket.close(1000), { once: true })
    return new ProcessConnection(pid, socket, exited)
  }

  /** Bytes (or text, as UTF-8) to the process's stdin or terminal. */
  send(data: string | Uint8Array): void {
    this.socket.send(typeof data === 'string' ? new TextEncoder().encode(data) : data)
  }

  /** A terminal's new size (the process gets SIGWINCH). */
  resize(cols: number, rows: number): void {
    this.socket.send(JSON.stringify({ type: 'resize', cols, rows }))
  }

  /** A signal to the process group (on a terminal: its foreground job). */
  kill(signal: ProcessSignal = 'SIGTERM'): void {
    this.socket.send(JSON.stringify({ type: 'signal', signal }))
  }

  /** Detaches; the process goes on (attach again later, or read its output). */
  close(): void {
    this.socket.close(1000)
  }
}
