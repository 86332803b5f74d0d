// Host end of one VM's peer bridge (the rds.bridge virtio port, see protocol/peer-bridge.ts).
// The manager is the socket client QEMU serves; after the channel resync it sends the bridge
// preface, then reads one JSON request per line and writes one JSON reply per line. Every frame on
// this connection comes from this VM: that is the caller's identity. The connection is re-made
// whenever it drops, until close() (the VM's process ended or the manager detaches).
// Every line is checked against the protocol's BridgeRequestFrame before anything acts on it: a
// malformed frame is answered with peer_call_invalid when it names a usable id, and dropped when
// it does not; either way the connection and the calls in flight go on.
// A guest that sends requests and never reads the replies gets backpressure: while replies are
// not drained the manager stops reading its requests, and past MAX_QUEUED_BYTES of unsent
// replies the connection is dropped, so the manager's memory does not follow the guest's writes.
import type net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import { BRIDGE_PREFACE, BridgeRequestFrame, jsonLine, parseFrame, PeerLimits, readLines, type PeerCallReply, type PeerCallRequest } from '@rds/protocol'
import { connectAndResync } from './resync.ts'

const MIN_RETRY_MS = 100
const MAX_RETRY_MS = 3000
/**
 * The preface is repeated on an open connection: a guest agent restarted by the init reopens the
 * port and waits for a preface, while QEMU keeps the host side of the socket connected (the host
 * sees no disconnect). The relay ignores repeated prefaces.
 */
const PREFACE_REPEAT_MS = 2000
/** Calls one VM may have in flight on its bridge, whatever their links: bounds what a guest can make the manager do. */
const MAX_IN_FLIGHT = 32
/**
 * Replies waiting for the guest to read them: a few maximal frames (a peer result may be as large
 * as a frame). Reading stops long before this while the guest does not drain; only replies already
 * being computed (MAX_IN_FLIGHT) and those of the chunk being parsed can still add to it.
 */
export const MAX_QUEUED_BYTES = 4 * PeerLimits.maxFrameBytes

export type BridgeCallHandler = (req: PeerCallRequest) => Promise<PeerCallReply>

export class BridgeConnection {
  private closed = false
  private sock: net.Socket | undefined
  private inFlight = 0
  private readonly socketPath: string
  private readonly onCall: BridgeCallHandler
  private readonly vmId: string
  private readonly log: FastifyBaseLogger

  constructor(socketPath: string, onCall: BridgeCallHandler, o: { vmId: string; log: FastifyBaseLogger }) {
    this.socketPath = socketPath
    this.onCall = onCall
    this.vmId = o.vmId
    this.log = o.log
  }

  start(): void {
    void this.loop()
  }

  close(): void {
    this.closed = true
    this.sock?.destroy()
  }

  private async loop(): Promise<void> {
    let retry = MIN_RETRY_MS
    while (!this.closed) {
      try {
        const sock = await connectAndResync(this.socketPath, 5000)
        if (this.closed) {
          sock.destroy()
          return
        }
        this.sock = sock
        sock.write(BRIDGE_PREFACE)
        // A heartbeat only matters to a guest that reads; one that does not gets no more bytes queued.
        const repeat = setInterval(() => sock.writableLength === 0 && sock.write(BRIDGE_PREFACE), PREFACE_REPEAT_MS)
        retry = MIN_RETRY_MS
        await this.serve(sock).finally(() => clearInterval(repeat))
      } catch {
        // Not reachable yet (boot, agent restart): retried below with backoff.
      }
      if (this.closed) return
      await sleep(retry)
      retry = Math.min(retry * 2, MAX_RETRY_MS)
    }
  }

  /** Resolves when the connection ends; a guest that sends an endless line is cut off (the loop reconnects). */
  private serve(sock: net.Socket): Promise<void> {
    sock.on('drain', () => sock.resume())
    return new Promise((resolve) => readLines(sock, PeerLimits.maxFrameBytes, (line) => this.dispatch(sock, line), resolve))
  }

  /** Writes one reply; stops reading while the guest does not take replies, drops it past the cap. */
  private reply(sock: net.Socket, text: string): void {
    if (sock.destroyed) return
    if (!sock.write(text)) sock.pause()
    if (sock.writableLength > MAX_QUEUED_BYTES) {
      this.log.error({ vmId: this.vmId, queuedBytes: sock.writableLength, maxQueuedBytes: MAX_QUEUED_BYTES }, 'peer bridge: the guest does not read its replies; dropping its bridge connection')
      sock.destroy()
    }
  }

  private dispatch(sock: net.Socket, line: string): void {
    const parsed = parseFrame(BridgeRequestFrame, line)
    if (!('frame' in parsed)) {
      // The agent checks calls with the same schema, so only a tampered guest gets here.
      if (parsed.id !== undefined) this.reply(sock, jsonLine({ id: parsed.id, ok: false, code: 'peer_call_invalid', message: `not a peer call frame (${parsed.problem})` }))
      return
    }
    const { id, ...req } = parsed.frame
    const send = (reply: PeerCallReply) => this.reply(sock, jsonLine({ ...reply, id }))
    if (this.inFlight >= MAX_IN_FLIGHT) {
      send({ ok: false, code: 'peer_concurrency_limited', message: `more than ${MAX_IN_FLIGHT} peer calls in flight from this VM` })
      return
    }
    this.inFlight++
    void this.onCall(req)
      .catch((err: unknown): PeerCallReply => ({ ok: false, code: 'internal', message: `peer call failed: ${(err as Error).message}` }))
      .then((reply) => {
        this.inFlight--
        send(reply)
      })
  }
}
