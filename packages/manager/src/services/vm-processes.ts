// Background processes in a running VM. The guest agent owns them (they outlive a manager
// restart: nothing is kept here but attach tickets), so every verb is one agent request: the
// manager adds the VM's secretEnv to the environment, maps the agent's refusals to API errors,
// and relays output as checked events (runtime/agent/output-events-in.ts).
import type { Readable } from 'node:stream'
import type { OutputEvent, ProcessInfo, ProcessSignal, PtySize } from '@rds/protocol'
import { askAgent } from './agent-fault.ts'
import type { Actor } from './accounts/actor.ts'
import type { AttachTickets } from './attach-tickets.ts'
import type { SecretBox } from './secret-env.ts'
import { assertState } from './vm-lifecycle.ts'
import type { VmLookup } from './vm-lookup.ts'
import { Errors } from '../errors.ts'
import { outputEventsOf } from '../runtime/agent/output-events-in.ts'
import type { Supervisor } from '../runtime/supervisor/supervisor.ts'

export interface ProcessStartInput {
  cmd?: string
  args?: string[]
  cwd?: string
  env?: Record<string, string>
  timeoutMs?: number
  stdin?: boolean
  pty?: PtySize
  tag?: string
}

export interface OutputQuery {
  since?: number
  stderrSince?: number
  follow?: boolean
}

/** Short exchanges (start, get, signal …); output and stdin are streams and have no deadline. */
const CALL_TIMEOUT_MS = 30_000
/** Open stdin and output streams may stay as long as their process runs. */
const STREAM_TIMEOUT_MS = 2 ** 31 - 1

export function createVmProcessService(deps: { vms: VmLookup; machines: Supervisor; secrets: SecretBox; tickets: AttachTickets }) {
  const { vms, machines } = deps

  async function agentFor(id: string) {
    const vm = await vms.get(id)
    assertState(vm, 'exec')
    const m = machines.get(id)
    if (!m) throw Errors.vmStateConflict(`VM must be RUNNING to exec (state=${vm.state})`)
    return { vm, agent: m.agent }
  }

  return {
    async start(id: string, input: ProcessStartInput): Promise<ProcessInfo> {
      if ((input.cmd === undefined) === (input.args === undefined)) throw Errors.badRequest('exactly one of cmd and args is required')
      const { vm, agent } = await agentFor(id)
      // Secrets win over the caller's env, as for exec.
      const env = { ...input.env, ...deps.secrets.envOf(vm) }
      return askAgent(id, agent.call('processStart', { ...input, env: Object.keys(env).length ? env : undefined }, CALL_TIMEOUT_MS))
    },

    async list(id: string): Promise<ProcessInfo[]> {
      const { agent } = await agentFor(id)
      return (await askAgent(id, agent.call('processList', undefined, CALL_TIMEOUT_MS))).processes
    },

    async get(id: string, pid: number): Promise<ProcessInfo> {
      const { agent } = await agentFor(id)
      return askAgent(id, agent.call('processGet', { pid }, CALL_TIMEOUT_MS))
    },

    /**
     * The checked events, and `cancel`, which the caller calls when its client left: a generator
     * waiting for output of a silent process cannot be returned until that output comes, while the
     * agent stream (one of the session's limited streams) must be let go at once.
     */
    async output(id: string, pid: number, q: OutputQuery): Promise<{ events: AsyncGenerator<OutputEvent>; cancel: () => void }> {
      const { agent } = await agentFor(id)
      const query = { pid, since: q.since, stderrSince: q.stderrSince, follow: q.follow ? ('true' as const) : ('false' as const) }
      const { body: stream } = await askAgent(id, agent.openStream('processOutput', query, CALL_TIMEOUT_MS))
      return { events: outputEventsOf(stream), cancel: () => stream.destroy() }
    },

    /** Writes `body` to the process's stdin as it arrives; resolves once the agent wrote all of it. */
    async stdin(id: string, pid: number, body: Readable, eof: boolean): Promise<void> {
      const { agent } = await agentFor(id)
      await askAgent(id, agent.upload('processStdin', { pid, eof: eof ? 'true' : undefined }, body, STREAM_TIMEOUT_MS))
    },

    async signal(id: string, pid: number, signal: ProcessSignal): Promise<void> {
      const { agent } = await agentFor(id)
      await askAgent(id, agent.call('processSignal', { pid, signal }, CALL_TIMEOUT_MS))
    },

    async resize(id: string, pid: number, size: PtySize): Promise<void> {
      const { agent } = await agentFor(id)
      await askAgent(id, agent.call('processResize', { pid, ...size }, CALL_TIMEOUT_MS))
    },

    async kill(id: string, pid: number): Promise<void> {
      const { agent } = await agentFor(id)
      await askAgent(id, agent.call('processKill', { pid }, CALL_TIMEOUT_MS))
    },

    /** A ticket for one WebSocket attach of this process (attach-tickets.ts). */
    async attachTicket(id: string, pid: number, actor: Actor): Promise<{ ticket: string; expiresAt: string }> {
      await this.get(id, pid)
      return deps.tickets.issue(id, pid, actor)
    },

    redeemTicket: (ticket: string, id: string, pid: number) => deps.tickets.redeem(ticket, id, pid),
  }
}
export type VmProcessService = ReturnType<typeof createVmProcessService>
