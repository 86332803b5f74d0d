// What the manager accepts from a guest agent. The guest is hostile, so an answer is only bytes
// until it matched its route in the protocol table (AgentRoutes): the route's success status with
// a body of the route's reply schema, or an error status with an AgentError body. Routes whose
// reply states the protocol version are checked for that first, so an agent of another protocol
// is named as such instead of as a broken reply.
import { AGENT_PROTOCOL_VERSION, AgentError, AgentRoutes, mismatch, type AgentCallName, type AgentReply, type AgentRouteName, type AgentUploadName } from '@rds/protocol'
import type { TSchema } from 'typebox'
import { AgentProtocolMismatchError, AgentRefusedError, AgentReplyInvalidError } from './faults.ts'

/** The reply of a JSON route, typed once it matched; any other answer is thrown as its fault. */
export function acceptReply<R extends AgentCallName>(route: R, status: number, body: unknown): AgentReply<R> {
  const spec = AgentRoutes[route]
  if (spec.statesVersion && status >= 200 && status < 300) checkVersion(body)
  return accept(route, spec.reply, status, body) as AgentReply<R>
}

/** The (empty) answer of an upload route; anything else is thrown as its fault. */
export function acceptUploaded(route: AgentUploadName, status: number, body: unknown): void {
  accept(route, AgentRoutes[route].reply, status, body)
}

function accept(route: AgentRouteName, reply: TSchema, status: number, body: unknown): unknown {
  if (status !== AgentRoutes[route].status) throw refusal(route, status, body)
  const problem = mismatch(reply, body)
  if (problem !== undefined) throw new AgentReplyInvalidError(route, problem)
  return body
}

/** The fault of an answer that is not the route's success: the agent's refusal, or an invalid reply. */
export function refusal(route: AgentRouteName, status: number, body: unknown): AgentRefusedError | AgentReplyInvalidError {
  const expected = AgentRoutes[route].status
  if (status < 400 || status > 599) return new AgentReplyInvalidError(route, `status ${status} where ${expected} or an error status belongs`)
  const problem = mismatch(AgentError, body)
  if (problem !== undefined) return new AgentReplyInvalidError(route, `error body of status ${status}: ${problem}`)
  const { code, message } = body as AgentError
  return new AgentRefusedError(route, status, code, message)
}

function checkVersion(body: unknown): void {
  const stated = typeof body === 'object' && body !== null ? (body as { protocolVersion?: unknown }).protocolVersion : undefined
  if (stated !== AGENT_PROTOCOL_VERSION) throw new AgentProtocolMismatchError(stated)
}
