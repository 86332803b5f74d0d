// GET /v1/vms/:id/processes/:pid/attach: a WebSocket onto a background process (@fastify/websocket).
// Binary frames are bytes (client -> stdin, server -> output, stdout and stderr alike); text
// frames are JSON control: the client's {"type":"resize",cols,rows} and {"type":"signal",signal},
// the server's {"type":"exit",exitCode} before it closes (and {"type":"error",code,message}).
// Auth: the X-API-Key header, or ?ticket= from POST …/attach-ticket (checked in the auth hook).
import { PassThrough } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { chunkBytes, mismatch, PROCESS_SIGNALS, PtySize, type ProcessSignal } from '@rds/protocol'
import { Type } from 'typebox'
import type { WebSocket } from 'ws'
import { ApiError } from '../../errors.ts'
import type { VmProcessService } from '../../services/vm-processes.ts'
import type { TicketAuth } from '../auth.ts'
import { AttachQuery, ProcessParams } from '../schemas/processes.ts'

/** Past this many bytes queued on the socket, the agent stream is not read until it drains. */
const SOCKET_HIGH_WATER = 1024 * 1024
/** One client frame at most (stdin bytes or control). */
export const ATTACH_MAX_FRAME_BYTES = 1024 * 1024

const ControlMessage = Type.Union([
  Type.Object({ type: Type.Literal('resize'), ...PtySize.properties }),
  Type.Object({ type: Type.Literal('signal'), signal: Type.Enum(PROCESS_SIGNALS) }),
])

/** WebSocket close codes of an attach that could not start (4000 + the HTTP status). */
const closeCodeOf = (err: unknown) => (err instanceof ApiError ? 4000 + err.status : 1011)

export const processAttachRoutes = (svc: VmProcessService): FastifyPluginAsyncTypebox => async (app) => {
  const ticketAuth: TicketAuth = (req) => {
    const { id, pid } = req.params as { id: string; pid: number }
    const ticket = (req.query as { ticket?: string }).ticket
    return typeof ticket === 'string' ? svc.redeemTicket(ticket, id, Number(pid)) : undefined
  }
  app.get(
    '/vms/:id/processes/:pid/attach',
    {
      websocket: true,
      config: { ticketAuth },
      schema: {
        tags: ['processes'],
        summary: 'Attach over WebSocket: binary frames are bytes (stdin / output), text frames JSON control (resize, signal; exit from the server)',
        params: ProcessParams,
        querystring: AttachQuery,
      },
    },
    async (socket, req) => {
      const { id, pid } = req.params
      // Frames that arrive while the attach is being set up are kept (the client may type at once).
      const early: Frame[] = []
      let earlyBytes = 0
      const keep = (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
        earlyBytes += Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength
        // Bounded like one frame: a client that floods before the attach is up is cut off.
        if (earlyBytes > ATTACH_MAX_FRAME_BYTES) return socket.close(1009)
        early.push([data, isBinary])
      }
      socket.on('message', keep)
      await attach(svc, socket, id, pid, req.query.since ?? 0, () => {
        socket.off('message', keep)
        return early
      }).catch((err: unknown) => {
        sendJson(socket, { type: 'error', code: err instanceof ApiError ? err.code : 'internal', message: err instanceof ApiError ? err.message : 'attach failed' })
        socket.close(closeCodeOf(err))
      })
    },
  )
}

function sendJson(socket: WebSocket, value: unknown): void {
  if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(value))
}

type Frame = [Buffer | ArrayBuffer | Buffer[], boolean]

async function attach(svc: VmProcessService, socket: WebSocket, id: string, pid: number, since: number, takeEarly: () => Frame[]): Promise<void> {
  const info = await svc.get(id, pid)
  const { events, cancel } = await svc.output(id, pid, { since, follow: true })
  let stdin: PassThrough | undefined
  if (info.stdin && info.state === 'running') {
    stdin = new PassThrough()
    const pipe = stdin
    // One stdin stream for the whole attach; a refusal (the process exited) just ends it.
    svc.stdin(id, pid, pipe, false).catch(() => {}).finally(() => {
      if (stdin === pipe) stdin = undefined
      pipe.destroy()
    })
  }
  // A client that left during the set-up: let go of the agent streams at once.
  const closed = socket.readyState === socket.OPEN ? new Promise<void>((resolve) => socket.once('close', () => resolve())) : Promise.resolve()
  void closed.then(() => {
    stdin?.end()
    cancel()
  })

  const onFrame = (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)
    if (isBinary) {
      if (!stdin) return
      // Backpressure towards the client: stop reading its frames until the agent took these.
      if (!stdin.write(bytes)) {
        socket.pause()
        stdin.once('drain', () => socket.resume())
        stdin.once('close', () => socket.resume())
      }
      return
    }
    let msg: unknown
    try {
      msg = JSON.parse(bytes.toString('utf8'))
    } catch {
      return sendJson(socket, { type: 'error', code: 'bad_request', message: 'a text frame must be a JSON control message' })
    }
    const problem = mismatch(ControlMessage, msg)
    if (problem !== undefined) return sendJson(socket, { type: 'error', code: 'bad_request', message: `unknown control message (${problem})` })
    const m = msg as { type: 'resize'; cols: number; rows: number } | { type: 'signal'; signal: ProcessSignal }
    const done = m.type === 'resize' ? svc.resize(id, pid, { cols: m.cols, rows: m.rows }) : svc.signal(id, pid, m.signal)
    done.catch((err: unknown) => sendJson(socket, { type: 'error', code: err instanceof ApiError ? err.code : 'internal', message: err instanceof ApiError ? err.message : 'control failed' }))
  }
  for (const [data, isBinary] of takeEarly()) onFrame(data, isBinary)
  socket.on('message', onFrame)

  for await (const e of events) {
    if (socket.readyState !== socket.OPEN) break
    if (e.type === 'stdout' || e.type === 'stderr') {
      const bytes = chunkBytes(e)
      if (socket.bufferedAmount + bytes.length <= SOCKET_HIGH_WATER) socket.send(bytes, { binary: true })
      else await new Promise<void>((resolve) => socket.send(bytes, { binary: true }, () => resolve()))
      continue
    }
    if (e.type === 'exit') sendJson(socket, { type: 'exit', exitCode: e.exitCode })
    else sendJson(socket, e)
    socket.close(e.type === 'exit' ? 1000 : 1011)
    return
  }
  // The process was forgotten or the stream ended without an exit: nothing more will come.
  if (socket.readyState === socket.OPEN) socket.close(1000)
}
