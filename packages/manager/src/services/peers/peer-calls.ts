// Bridge calls: consumer code calls a proxy; the call arrives on the consumer VM's own bridge
// connection, so `consumerId` below is the channel's VM, never something the guest said. Each call
// is checked against the link (this VM has the alias) AND the manifest stored for the link (module
// path and export declared); anything else is refused before any code runs. The export then runs
// in the provider as uid 1000 through the ordinary run path (provider's secretEnv applied, recorded
// in the provider's exec history), and provider secret values are masked in whatever comes back.
import type { FastifyBaseLogger } from 'fastify'
import { declaresExport, PeerLimits, type PeerCallReply, type PeerCallRequest, type RunResult } from '@rds/protocol'
import { ApiError, Errors } from '../../errors.ts'
import { BridgeConnection } from '../../runtime/agent/bridge-connection.ts'
import type { VmHandle } from '../../runtime/vmm/driver.ts'
import type { PeerLinksRepo } from '../../store/peer-links-repo.ts'
import type { VmRecord } from '../../store/vms-repo.ts'
import type { SecretBox } from '../secret-env.ts'
import { maskSecrets, type VmExecService } from '../vm-exec.ts'
import { fileUrl, runtimeFor } from './peer-links.ts'
import { KeyedLimiter } from '../../runtime/limits/keyed-limiter.ts'

/**
 * The code run in the provider for one call. The arguments travel as a string that the provider
 * parses: JSON text pasted as code would be an object literal, where a "__proto__" key sets the
 * object's prototype instead of being the key the consumer sent.
 */
const callSource = (rel: string, exportName: string, argsJson: string) => `
const mod = await import(${JSON.stringify(fileUrl(rel))});
const fn = ${exportName === 'default' ? 'mod.default' : `mod[${JSON.stringify(exportName)}]`};
if (typeof fn !== 'function') throw new Error(${JSON.stringify(`Export ${exportName} is not callable`)});
const args = JSON.parse(${JSON.stringify(argsJson)});
result.set(await fn(...args));
`

/** Per-link limits, in this manager process (documented in docs/peers.md). */
export class LinkLimiter {
  private readonly limiter = new KeyedLimiter({ ratePerS: PeerLimits.callsPerSecondPerLink, burst: PeerLimits.callsPerSecondPerLink, maxInFlight: PeerLimits.maxConcurrentPerLink })

  acquire(key: string, alias: string): () => void {
    const admission = this.limiter.admit(key)
    if (admission.ok) return admission.release
    if (admission.reason === 'in_flight') throw Errors.peerConcurrencyLimited(alias, PeerLimits.maxConcurrentPerLink)
    throw Errors.peerRateLimited(alias, PeerLimits.callsPerSecondPerLink)
  }
}

export function createPeerCalls(deps: { links: PeerLinksRepo; getVm: (id: string) => Promise<VmRecord | undefined>; vmExec: VmExecService; secrets: SecretBox; maxRunTimeoutMs: number; log: FastifyBaseLogger }) {
  const limiter = new LinkLimiter()
  const bridges = new Map<string, BridgeConnection>()

  /** `req` is a frame that matched the protocol's schema (bridge-connection.ts checks every one). */
  async function call(consumerId: string, req: PeerCallRequest): Promise<unknown> {
    if (req.alias.trim() === '') throw Errors.peerCallInvalid('alias is required')
    const alias = req.alias.trim()
    const link = await deps.links.get(consumerId, alias)
    if (!link) throw Errors.peerCallForbidden(`VM ${consumerId} is not linked to alias ${alias.slice(0, 64)}`)
    if (!declaresExport(link.manifest, req.modulePath, req.exportName)) {
      // Echoed to the caller only; cut so a huge name does not travel back whole.
      const shown = (v: string) => v.slice(0, 200)
      throw Errors.peerCallForbidden(`Peer alias ${alias}: ${shown(req.modulePath)} export ${shown(req.exportName)} is not declared in the provider manifest`)
    }
    const argsJson = JSON.stringify(req.args)
    if (Buffer.byteLength(argsJson) > PeerLimits.maxArgsBytes) throw Errors.peerArgsTooLarge(PeerLimits.maxArgsBytes)
    const maxTimeout = Math.min(PeerLimits.maxTimeoutMs, deps.maxRunTimeoutMs)
    const timeoutMs = Math.min(req.timeoutMs ?? PeerLimits.defaultTimeoutMs, maxTimeout)

    const release = limiter.acquire(`${consumerId}\0${alias}`, alias)
    try {
      const provider = await deps.getVm(link.providerVmId)
      if (!provider) throw Errors.peerProviderGone(alias, link.providerVmId)
      if (provider.state !== 'RUNNING') throw Errors.peerProviderNotRunning(alias, provider.id, provider.state)
      const secrets = deps.secrets.envOf(provider)
      const rel = req.modulePath.slice('/workspace/'.length)
      const input = { code: callSource(rel, req.exportName, argsJson), timeoutMs }
      // The generated code holds the consumer's arguments: the provider's history records which
      // call ran, never what was passed.
      const history = { peerCall: { consumerVmId: consumerId, alias, modulePath: req.modulePath, exportName: req.exportName }, args: `[not stored: ${Buffer.byteLength(argsJson)} bytes]`, timeoutMs }
      let r: RunResult
      try {
        const exec = deps.vmExec
        r = await (runtimeFor(rel) === 'deno' ? exec.runTs(provider.id, input, history) : exec.runJs(provider.id, input, history))
      } catch (e) {
        // The provider vanished or stopped between the check and the run.
        if (e instanceof ApiError && e.code === 'vm_not_found') throw Errors.peerProviderGone(alias, provider.id)
        if (e instanceof ApiError) throw new ApiError(e.status, e.code, maskSecrets(`Peer alias ${alias}: ${e.message}`, secrets))
        throw e
      }
      if (r.timedOut) throw Errors.peerCallTimeout(alias, timeoutMs)
      if (r.error !== undefined || r.exitCode !== 0) {
        const message = (r.error as { message?: unknown } | undefined)?.message
        const text = typeof message === 'string' && message ? message : r.stderr.trim().slice(-500) || `remote invocation failed (exit code ${r.exitCode})`
        throw Errors.peerCallFailed(maskSecrets(text, secrets))
      }
      const result = maskSecrets(r.result ?? null, secrets)
      if (Buffer.byteLength(JSON.stringify(result)) > PeerLimits.maxResultBytes) throw Errors.peerResultTooLarge(PeerLimits.maxResultBytes)
      return result
    } finally {
      release()
    }
  }

  async function handle(consumerId: string, req: PeerCallRequest): Promise<PeerCallReply> {
    try {
      return { ok: true, result: await call(consumerId, req) }
    } catch (e) {
      if (e instanceof ApiError) return { ok: false, code: e.code, message: e.message }
      deps.log.error({ vmId: consumerId, err: (e as Error).message }, 'peer call failed')
      return { ok: false, code: 'internal', message: 'peer call failed inside the manager' }
    }
  }

  return {
    handle,
    /** A VM's process is live (boot or re-attach after a manager restart): serve its bridge until the process ends. */
    attachBridge(vmId: string, vmHandle: VmHandle): void {
      bridges.get(vmId)?.close()
      const conn = new BridgeConnection(vmHandle.channels.bridge, (req) => handle(vmId, req), { vmId, log: deps.log })
      bridges.set(vmId, conn)
      conn.start()
      void vmHandle.exited.then(() => {
        conn.close()
        if (bridges.get(vmId) === conn) bridges.delete(vmId)
      })
    },
    closeAll(): void {
      for (const c of bridges.values()) c.close()
      bridges.clear()
    },
  }
}
export type PeerCalls = ReturnType<typeof createPeerCalls>
