// The peer bridge: consumer code calls a proxy, the proxy talks to the guest agent over a local
// Unix socket, the agent relays the call over the VM's own virtio-serial port (BRIDGE_PORT_NAME)
// to the manager. The manager knows the calling VM from the port the frame arrived on; nothing in
// a frame says who is calling. Frames are single JSON lines in both directions.

/** The Unix socket the agent listens on inside the guest; uid 1000 may connect. */
export const PEER_BRIDGE_SOCKET = '/run/rds-peer/bridge.sock'

/**
 * Sent by the host after the channel resync (handshake.ts) in place of the HTTP/2 preface: the
 * guest drops every byte before it, then both sides speak JSON lines.
 */
export const BRIDGE_PREFACE = 'RDS-BRIDGE/1\n'

/** Limits the manager enforces (documented in docs/peers.md); the agent uses the frame cap to stop reading early. */
export const PeerLimits = {
  maxArgsBytes: 256 * 1024,
  maxResultBytes: 1024 * 1024,
  defaultTimeoutMs: 30_000,
  maxTimeoutMs: 120_000,
  /** Calls in flight per link. */
  maxConcurrentPerLink: 4,
  /** Token bucket per link: this many calls per second, bursts up to the same number. */
  callsPerSecondPerLink: 20,
  /** One frame on the wire (JSON-encoded, result or arguments plus framing). */
  maxFrameBytes: 2 * 1024 * 1024,
} as const

/** What a proxy sends (one line on the local socket). */
export interface PeerCallRequest {
  alias: string
  modulePath: string
  exportName: string
  args: unknown[]
  timeoutMs?: number
}

export type PeerCallReply = { ok: true; result: unknown } | { ok: false; code: string; message: string }

/** Agent -> manager: the proxy's request with the agent's own id for matching the reply. */
export type BridgeRequestFrame = PeerCallRequest & { id: number }
/** Manager -> agent. */
export type BridgeReplyFrame = PeerCallReply & { id: number }
