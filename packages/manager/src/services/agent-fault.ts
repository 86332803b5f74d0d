// How a failure of a VM's agent channel reaches the API: every agent-client error becomes a
// catalogue error of that VM's request, never anything that concerns the manager as a whole.
import { Errors } from '../errors.ts'
import { AgentReplyTooLargeError, AgentUnavailableError } from '../runtime/agent/client.ts'

export function agentFault(vmId: string, err: unknown): unknown {
  if (err instanceof AgentReplyTooLargeError) return Errors.agentReplyTooLarge(vmId, err.maxBytes)
  if (err instanceof AgentUnavailableError) return Errors.agentUnavailable(vmId, err.message)
  return err
}
