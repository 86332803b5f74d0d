// How one exchange with a guest agent can fail, as typed values. services/agent-fault.ts is the
// one place that turns each of them into an API error of the VM's request.
import { AGENT_PROTOCOL_VERSION, type AgentErrorCode, type AgentRouteName } from '@rds/protocol'

/** No usable answer: no session, a dropped stream, a deadline passed, or one of the kinds below. */
export class AgentUnavailableError extends Error {}

/** An agent fault too (the subclass keeps every existing agent-fault path), reported with its own code. */
export class AgentReplyTooLargeError extends AgentUnavailableError {
  readonly maxBytes: number
  constructor(maxBytes: number) {
    super(`agent reply exceeds ${maxBytes} bytes`)
    this.maxBytes = maxBytes
  }
}

/**
 * The answer does not match its route in the protocol: the agent is broken or hostile. Only the
 * route and a short reason are kept, never the body.
 */
export class AgentReplyInvalidError extends AgentUnavailableError {
  readonly route: AgentRouteName
  readonly reason: string
  constructor(route: AgentRouteName, reason: string) {
    super(`agent reply to ${route} does not match the protocol (${reason})`)
    this.route = route
    this.reason = reason
  }
}

/**
 * The agent states another protocol version than this manager's (or none): its image was built
 * for another version of run-dat-sheesh. Retrying cannot help, so a boot fails at once with it.
 */
export class AgentProtocolMismatchError extends AgentUnavailableError {
  /** What the agent stated, when it stated an integer. */
  readonly theirs: number | undefined
  constructor(stated: unknown) {
    // Repeated only when it is a plain integer: the value is the guest's to choose.
    const theirs = Number.isSafeInteger(stated) ? (stated as number) : undefined
    const says = theirs !== undefined ? `speaks protocol ${theirs}` : stated === undefined ? 'states no protocol version (agents before protocol 2 did not)' : 'states an unreadable protocol version'
    super(`the guest agent ${says} but this manager speaks protocol ${AGENT_PROTOCOL_VERSION}: the guest image was built for another version of run-dat-sheesh; rebuild it (npm run image) or upload a matching one`)
    this.theirs = theirs
  }
}

/** The agent refused the request with a well-formed error (its code is one of the protocol's). */
export class AgentRefusedError extends Error {
  readonly route: AgentRouteName
  readonly status: number
  readonly code: AgentErrorCode
  readonly agentMessage: string
  constructor(route: AgentRouteName, status: number, code: AgentErrorCode, agentMessage: string) {
    super(`agent ${route} failed with status ${status}: ${code}: ${agentMessage}`)
    this.route = route
    this.status = status
    this.code = code
    this.agentMessage = agentMessage
  }
}
