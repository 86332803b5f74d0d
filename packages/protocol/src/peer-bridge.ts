// The peer bridge: consumer code calls a proxy, the proxy talks to the guest agent over a local
// Unix socket, the agent relays the call over the VM's own virtio-serial port (BRIDGE_PORT_NAME)
// to the manager. The manager knows the calling VM from the port the frame arrived on; nothing in
// a frame says who is calling. Frames are single JSON lines in both directions (json-lines.ts), and
// each end checks every frame it receives against the schemas below before acting on it.
import { Type, type Static, type TSchema } from 'typebox'
import { matches, mismatch } from './validate.ts'

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
export const PeerCallRequest = Type.Object({
  alias: Type.String(),
  modulePath: Type.String(),
  exportName: Type.String(),
  args: Type.Array(Type.Unknown()),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 1 })),
})
export type PeerCallRequest = Static<typeof PeerCallRequest>

const CallSucceeded = Type.Object({ ok: Type.Literal(true), result: Type.Optional(Type.Unknown()) })
const CallFailed = Type.Object({ ok: Type.Literal(false), code: Type.String(), message: Type.String() })

/** What the proxy gets back: the export's result, or a code and a sentence. */
export const PeerCallReply = Type.Union([CallSucceeded, CallFailed])
export type PeerCallReply = Static<typeof PeerCallReply>

/** The agent's number for a call, echoed in its reply; not an identity (the channel is that). */
const FrameId = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })

/** Agent -> manager: the proxy's request with the agent's own id for matching the reply. */
export const BridgeRequestFrame = Type.Object({ id: FrameId, ...PeerCallRequest.properties })
export type BridgeRequestFrame = Static<typeof BridgeRequestFrame>

/** Manager -> agent. */
export const BridgeReplyFrame = Type.Union([Type.Object({ id: FrameId, ...CallSucceeded.properties }), Type.Object({ id: FrameId, ...CallFailed.properties })])
export type BridgeReplyFrame = Static<typeof BridgeReplyFrame>

/**
 * One received line as a frame of `schema`, or why it is not one (a short reason naming no value
 * the sender chose). `id` is the frame's id when the line carried a usable one, so that a refusal
 * can still be addressed to the call.
 */
export function parseFrame<S extends TSchema>(schema: S, line: string): { frame: Static<S> } | { problem: string; id?: number } {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return { problem: 'not valid JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { problem: 'not a JSON object' }
  const problem = mismatch(schema, value)
  if (problem === undefined) return { frame: value as Static<S> }
  const id = (value as { id?: unknown }).id
  return matches(FrameId, id) ? { problem, id } : { problem }
}
