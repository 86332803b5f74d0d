import { AGENT_PROTOCOL_VERSION, type AgentIdentity, type Health } from '@rds/protocol'
import { AGENT_VERSION } from '../config.ts'
import type { AgentContext } from '../context.ts'

/** Stated in every session's first answer (init): the host refuses an agent of another protocol. */
export const identity = (): AgentIdentity => ({ agentVersion: AGENT_VERSION, protocolVersion: AGENT_PROTOCOL_VERSION })

export function handleHealth(ctx: AgentContext): Health {
  return { status: 'ok', ...identity(), uptimeMs: Date.now() - ctx.startedAt }
}
