// How a failure of a VM's agent channel reaches the API: every agent-client fault becomes a
// catalogue error of that VM's request, never anything that concerns the manager as a whole.
// This is the one place that maps them, the agent's own refusals included.
import { ApiError, Errors } from '../errors.ts'
import { AgentRefusedError, AgentReplyInvalidError, AgentReplyTooLargeError, AgentUnavailableError } from '../runtime/agent/faults.ts'

export function agentFault(vmId: string, err: unknown): unknown {
  if (err instanceof AgentRefusedError) return refused(err)
  if (err instanceof AgentReplyTooLargeError) return Errors.agentReplyTooLarge(vmId, err.maxBytes)
  if (err instanceof AgentReplyInvalidError) return Errors.agentReplyInvalid(vmId, err.route, err.reason)
  if (err instanceof AgentUnavailableError) return Errors.agentUnavailable(vmId, err.message)
  return err
}

/** One request to VM `vmId`'s agent: its result, or its failure as that VM's API error. */
export async function askAgent<T>(vmId: string, request: Promise<T>): Promise<T> {
  try {
    return await request
  } catch (err) {
    throw agentFault(vmId, err)
  }
}

/**
 * The agent's own refusal keeps its code and sentence (the original's clients test for them) with
 * a status chosen here: a guest path that does not exist is a 400 as in the original, and whatever
 * the agent reports as its own failure is a 502.
 */
function refused(err: AgentRefusedError): ApiError {
  if (err.status === 413 || err.code === 'archive_too_large') return Errors.archiveTooLarge(err.agentMessage)
  // Background processes: the agent's table is the truth, its codes go on with their own statuses.
  if (err.code === 'process_not_found') return new ApiError(404, err.code, err.agentMessage)
  if (err.code === 'process_limit') return new ApiError(429, err.code, err.agentMessage)
  if (err.code === 'process_state') return new ApiError(409, err.code, err.agentMessage)
  if (err.status >= 400 && err.status < 500) return new ApiError(400, err.code, err.agentMessage)
  return Errors.agentError(err.agentMessage)
}
