// Host end of one VM's peer bridge (the rds.bridge virtio port, see protocol/peer-bridge.ts).
// The manager is the socket client QEMU serves; after the channel resync it sends the bridge
// preface, then reads one JSON request per line and writes one JSON reply per line. Every frame on
// this connection comes from this VM: that is the caller's identity. The connection is re-made
// whenever it drops, until close() (the VM's process ended or the manager detaches).
import type net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { BRIDGE_PREFACE, PeerLimits, readLines, type BridgeRequestFrame, type PeerCallReply, type PeerCallRequest } from '@rds/protocol'
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

export type BridgeCallHandler = (req: PeerCallRequest) => Promise<PeerCallReply>

export class BridgeConnection {
  private closed = false
  private sock: net.Socket | undefined
  private inFlight = 0
  private readonly socketPath: string
  private readonly onCall: BridgeCallHandler

  constructor(socketPath: string, onCall: BridgeCallHandler) {
    this.socketPath = socketPath
    this.onCall = onCall
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
        const repeat = setInterval(() => sock.write(BRIDGE_PREFACE), PREFACE_REPEAT_MS)
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
    return new Promise((resolve) => readLines(sock, PeerLimits.maxFrameBytes, (line) => this.dispatch(sock, line), resolve))
  }

  private dispatch(sock: net.Socket, line: string): void {
    let frame: BridgeRequestFrame
    try {
      frame = JSON.parse(line) as BridgeRequestFrame
    } catch {
      return // not a frame; the agent never sends these
    }
    if (typeof frame !== 'object' || frame === null || !Number.isSafeInteger(frame.id)) return
    const { id, ...req } = frame
    const send = (reply: PeerCallReply) => {
      if (!sock.destroyed) sock.write(JSON.stringify({ ...reply, id }) + '\n')
    }
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
