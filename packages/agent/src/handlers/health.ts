import { AGENT_PROTOCOL_VERSION, type Health } from '@rds/protocol'
import { AGENT_VERSION } from '../config.ts'
import type { AgentContext } from '../context.ts'

export function handleHealth(ctx: AgentContext): Health {
  return { status: 'ok', agentVersion: AGENT_VERSION, protocolVersion: AGENT_PROTOCOL_VERSION, uptimeMs: Date.now() - ctx.startedAt }
}
