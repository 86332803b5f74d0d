// Peer links: a consumer VM calls exports of provider VMs under an alias. This module validates
// links, inspects providers (manifest read through the provider's agent, declared exports checked
// callable by a run inside the provider), stores the validated manifest per link, and installs
// the generated files into the consumer (consumer-files.ts). Calls themselves: peer-calls.ts.
import { Readable } from 'node:stream'
import { PEER_MANIFEST_PATH, PeerManifestError, parsePeerManifest, type PeerManifest, type RunResult } from '@rds/protocol'
import { ApiError, Errors } from '../../errors.ts'
import { askAgent } from '../agent-fault.ts'
import type { RecordActivity } from '../activity/activity-log.ts'
import type { PeerLinkRecord, PeerLinksRepo, SourceMode } from '../../store/peer-links-repo.ts'
import type { VmRecord } from '../../store/vms-repo.ts'
import { KeyedLock } from '../locks.ts'
import type { Supervisor } from '../../runtime/supervisor/supervisor.ts'
import type { SecretBox } from '../secret-env.ts'
import { maskSecrets, type VmExecService } from '../vm-exec.ts'
import { consumerFiles } from './consumer-files.ts'
import { eachTarFile, packTree, sanitizedSource } from './provider-source.ts'

export interface PeerLinkInput {
  alias: string
  vmId: string
  sourceMode?: string
}

/** A link whose provider was inspected and whose manifest is valid: ready to be stored and installed. */
export type { PeerLinkRecord }
export type PreparedLink = Omit<PeerLinkRecord, 'consumerVmId'>

const ALIAS = /^[A-Za-z0-9_-]+$/
const MAX_LINKS = 32
const INSPECT_TIMEOUT_MS = 20_000
const MAX_MANIFEST_BYTES = 1024 * 1024

export const runtimeFor = (modulePath: string): 'deno' | 'node' => (/\.(ts|mts|tsx)$/.test(modulePath) ? 'deno' : 'node')
export const fileUrl = (rel: string) => `file:///workspace/${rel.split('/').map(encodeURIComponent).join('/')}`

/** Lists, for each module, whether it is a file and which of its exports are functions. */
const inspectSource = (paths: string[]) => `
const paths = ${JSON.stringify(paths)};
const isFile = async (p) => {
  try {
    if (globalThis.Deno) return (await Deno.stat(p)).isFile;
    const fs = await import('node:fs');
    return fs.statSync(p).isFile();
  } catch { return false }
};
const out = {};
for (const p of paths) {
  if (!(await isFile('/workspace/' + p))) { out[p] = { missing: true }; continue }
  try {
    const mod = await import('file:///workspace/' + p.split('/').map(encodeURIComponent).join('/'));
    out[p] = { exports: Object.keys(mod).filter((k) => typeof mod[k] === 'function').sort() };
  } catch (e) {
    out[p] = { error: String((e && e.message) || e).slice(0, 500) };
  }
}
result.set(out);
`

type Inspection = Record<string, { missing?: boolean; exports?: string[]; error?: string }>

export function createPeerLinks(deps: { links: PeerLinksRepo; getVm: (id: string) => Promise<VmRecord | undefined>; vmExec: VmExecService; machines: Supervisor; secrets: SecretBox; activity: RecordActivity }) {
  const peerActivity = (type: string, consumerId: string, message: string, meta: Record<string, unknown>) => deps.activity({ type, entityType: 'vm', entityId: consumerId, message, meta })
  const { links } = deps
  const lock = new KeyedLock()

  async function runningProvider(alias: string, vmId: string): Promise<VmRecord> {
    const vm = await deps.getVm(vmId)
    if (!vm) throw Errors.invalidPeerLinks(`peerLinks target not found: ${vmId}`)
    if (vm.state !== 'RUNNING' || !deps.machines.get(vmId)) throw Errors.peerProviderNotRunning(alias, vmId, vm.state)
    return vm
  }

  async function readManifestText(provider: VmRecord): Promise<string | undefined> {
    let stream: Readable
    try {
      stream = await deps.vmExec.download(provider.id, PEER_MANIFEST_PATH, 'tar')
    } catch (e) {
      if (e instanceof ApiError && e.code === 'path_not_found') return undefined
      throw e
    }
    let text: string | undefined
    await eachTarFile(stream, async (_name, size, read) => {
      if (size > MAX_MANIFEST_BYTES) throw new PeerManifestError(`provider manifest larger than ${MAX_MANIFEST_BYTES} bytes`)
      text = (await read())?.toString('utf8')
    })
    return text
  }

  /** Every declared module exists and every declared export is a function, checked inside the provider. */
  async function checkCallable(provider: VmRecord, manifest: PeerManifest): Promise<void> {
    for (const runtime of ['deno', 'node'] as const) {
      const mods = manifest.modules.filter((m) => runtimeFor(m.path) === runtime)
      if (mods.length === 0) continue
      const code = inspectSource(mods.map((m) => m.path))
      const exec = deps.vmExec
      const r: RunResult = await (runtime === 'deno' ? exec.runTs(provider.id, { code, timeoutMs: INSPECT_TIMEOUT_MS }) : exec.runJs(provider.id, { code, timeoutMs: INSPECT_TIMEOUT_MS }))
      const found = (r.result ?? {}) as Inspection
      for (const m of mods) {
        const f = found[m.path]
        if (!f) {
          if (r.timedOut) throw new PeerManifestError(`unable to inspect ${m.path}: timed out after ${INSPECT_TIMEOUT_MS} ms`)
          const why = ((r.error as { message?: string } | undefined)?.message ?? r.stderr).trim().slice(0, 500)
          throw new PeerManifestError(why ? `unable to inspect ${m.path}: ${why}` : `module inspection did not return callable exports for ${m.path}`)
        }
        if (f.missing) throw new PeerManifestError(`declared module not found: /workspace/${m.path}`)
        if (f.error !== undefined) throw new PeerManifestError(`unable to inspect ${m.path}: ${f.error}`)
        if (!Array.isArray(f.exports)) throw new PeerManifestError(`module inspection did not return callable exports for ${m.path}`)
        for (const e of m.exports) if (!f.exports.includes(e.name)) throw new PeerManifestError(`declared export ${e.name} is not callable in /workspace/${m.path}`)
      }
    }
  }

  /** Reads and validates one provider's manifest; errors carry `Peer alias <a>: ` and never a provider secret. */
  async function inspect(alias: string, providerId: string): Promise<PeerManifest> {
    const provider = await runningProvider(alias, providerId)
    try {
      const manifest = parsePeerManifest(await readManifestText(provider))
      await checkCallable(provider, manifest)
      return manifest
    } catch (e) {
      const masked = (m: string) => maskSecrets(m, deps.secrets.envOf(provider))
      if (e instanceof PeerManifestError) throw Errors.invalidPeerManifest(alias, masked(e.message))
      if (e instanceof ApiError) throw new ApiError(e.status, e.code, `Peer alias ${alias}: ${masked(e.message)}`)
      throw e
    }
  }

  function validateInput(input: PeerLinkInput[]): Array<{ alias: string; vmId: string; sourceMode: SourceMode }> {
    if (input.length > MAX_LINKS) throw Errors.invalidPeerLinks(`at most ${MAX_LINKS} peerLinks`)
    const seen = new Set<string>()
    return input.map((l) => {
      if (typeof l.alias !== 'string' || !ALIAS.test(l.alias) || l.alias.length > 64) throw Errors.invalidPeerLinks('Invalid peerLinks alias')
      if (typeof l.vmId !== 'string' || l.vmId.trim() === '') throw Errors.invalidPeerLinks('Invalid peerLinks vmId')
      if (seen.has(l.alias)) throw Errors.invalidPeerLinks('peerLinks aliases must be unique')
      seen.add(l.alias)
      return { alias: l.alias, vmId: l.vmId, sourceMode: l.sourceMode === 'mounted' ? 'mounted' : 'hidden' }
    })
  }

  /**
   * The provider's sanitized /workspace. Read a second time if the first read broke off: the
   * provider's own processes may be writing there (a runtime filling its cache in /workspace/.deno)
   * and the archive of a file changing under tar can fail. A read that fails twice is the
   * provider's 502, never a 500.
   */
  async function mountedSource(alias: string, provider: VmRecord): Promise<Map<string, Buffer>> {
    const secrets = Object.values(deps.secrets.envOf(provider))
    const read = async () => sanitizedSource(await deps.vmExec.download(provider.id, '/workspace', 'tar'), secrets)
    try {
      return await read()
    } catch (first) {
      if (first instanceof ApiError) throw first
      try {
        return await read()
      } catch (second) {
        if (second instanceof ApiError) throw second
        throw Errors.peerSourceUnreadable(alias, (second as Error).message)
      }
    }
  }

  /** Writes the consumer's /workspace/peers from the given links (fetching mounted sources now). */
  async function install(consumerId: string, prepared: PreparedLink[]): Promise<void> {
    const files = new Map<string, string | Buffer>(consumerFiles(prepared))
    for (const l of prepared.filter((p) => p.sourceMode === 'mounted')) {
      const provider = await runningProvider(l.alias, l.providerVmId)
      for (const [rel, data] of await mountedSource(l.alias, provider)) files.set(`${l.alias}/source/${rel}`, data)
    }
    const m = deps.machines.get(consumerId)
    if (!m) throw Errors.vmStateConflict(`VM must be RUNNING to sync peers (VM ${consumerId})`)
    const body = await packTree(files)
    await askAgent(consumerId, m.agent.upload('peersInstall', {}, Readable.from([body]), 120_000))
  }

  const now = () => new Date().toISOString()

  return {
    /**
     * Create, step 1, before anything of the consumer exists: syntax, providers running, manifests
     * valid and callable. A failure here leaves nothing behind.
     */
    async prepare(input: PeerLinkInput[]): Promise<PreparedLink[]> {
      const out: PreparedLink[] = []
      for (const l of validateInput(input)) out.push({ alias: l.alias, providerVmId: l.vmId, sourceMode: l.sourceMode, manifest: await inspect(l.alias, l.vmId), syncedAt: now() })
      return out
    },

    /** Create, step 2, once the consumer runs: store the links and write its files. */
    async attach(consumerId: string, prepared: PreparedLink[]): Promise<void> {
      await lock.run(consumerId, async () => {
        await links.replaceFor(consumerId, prepared)
        await install(consumerId, prepared)
      })
    },

    list: (consumerId: string) => links.listFor(consumerId),
    listAll: () => links.listAll(),
    forget: (consumerId: string) => links.removeFor(consumerId),

    /** Re-reads every provider and rewrites the consumer's files; all-or-nothing. */
    async sync(consumer: VmRecord): Promise<PeerLinkRecord[]> {
      return lock.run(consumer.id, async () => {
        if (consumer.state !== 'RUNNING') throw Errors.vmStateConflict(`VM must be RUNNING to sync peers (state=${consumer.state})`)
        const current = await links.listFor(consumer.id)
        const next: PreparedLink[] = []
        for (const l of current) next.push({ ...l, manifest: await inspect(l.alias, l.providerVmId), syncedAt: now() })
        await install(consumer.id, next)
        await links.replaceFor(consumer.id, next)
        peerActivity('peer.synced', consumer.id, `VM ${consumer.id}: peer files rewritten`, { aliases: next.map((l) => l.alias) })
        return links.listFor(consumer.id)
      })
    },

    /** Adds one link to a running consumer: checked like a link given at create, then the files are rewritten. */
    async link(consumer: VmRecord, input: PeerLinkInput): Promise<PeerLinkRecord[]> {
      return lock.run(consumer.id, async () => {
        if (consumer.state !== 'RUNNING' || !deps.machines.get(consumer.id)) throw Errors.vmStateConflict(`VM must be RUNNING to add a peer link (state=${consumer.state})`)
        const current = await links.listFor(consumer.id)
        const [l] = validateInput([...current.map((c) => ({ alias: c.alias, vmId: c.providerVmId })), input]).slice(-1)
        if (l!.vmId === consumer.id) throw Errors.invalidPeerLinks('peerLinks cannot self-reference')
        const next = [...current, { alias: l!.alias, providerVmId: l!.vmId, sourceMode: l!.sourceMode, manifest: await inspect(l!.alias, l!.vmId), syncedAt: now() }]
        await install(consumer.id, next)
        await links.replaceFor(consumer.id, next)
        peerActivity('peer.linked', consumer.id, `VM ${consumer.id} linked to ${l!.vmId} as ${l!.alias}`, { alias: l!.alias, providerVmId: l!.vmId, sourceMode: l!.sourceMode })
        return links.listFor(consumer.id)
      })
    },

    /**
     * Removes one link: calls under the alias are refused from now on (checked per call), and the
     * alias's files are removed from the consumer when it is running (else at its next sync).
     */
    async unlink(consumer: VmRecord, alias: string): Promise<PeerLinkRecord[]> {
      // The original's checks, in its order: empty, malformed, unknown.
      if (alias.trim() === '') throw Errors.invalidPeerLinks('Invalid peer alias')
      if (!ALIAS.test(alias)) throw Errors.invalidPeerLinks('Invalid peerLinks alias')
      return lock.run(consumer.id, async () => {
        const current = await links.listFor(consumer.id)
        if (!current.some((l) => l.alias === alias)) throw Errors.peerLinkNotFound(consumer.id, alias)
        const next = current.filter((l) => l.alias !== alias)
        // The link goes first: from here on calls under the alias are refused, whatever the files say.
        await links.replaceFor(consumer.id, next)
        peerActivity('peer.unlinked', consumer.id, `VM ${consumer.id}: link ${alias} removed`, { alias })
        if (consumer.state === 'RUNNING' && deps.machines.get(consumer.id)) {
          try {
            await install(consumer.id, next)
          } catch (e) {
            if (!(e instanceof ApiError)) throw e
            throw new ApiError(e.status, e.code, `Link ${alias} removed, but rewriting /workspace/peers failed (run POST /v1/vms/${consumer.id}/peers/sync): ${e.message}`)
          }
        }
        return links.listFor(consumer.id)
      })
    },

    async setSourceMode(consumer: VmRecord, alias: string, sourceMode: SourceMode): Promise<PeerLinkRecord[]> {
      // The original's checks, in its order: empty, malformed, unknown.
      if (alias.trim() === '') throw Errors.invalidPeerLinks('Invalid peer alias')
      if (!ALIAS.test(alias)) throw Errors.invalidPeerLinks('Invalid peerLinks alias')
      return lock.run(consumer.id, async () => {
        const current = await links.listFor(consumer.id)
        if (!current.some((l) => l.alias === alias)) throw Errors.peerLinkNotFound(consumer.id, alias)
        if (consumer.state !== 'RUNNING') throw Errors.vmStateConflict(`VM must be RUNNING to change peer source mode (state=${consumer.state})`)
        const next = current.map((l) => (l.alias === alias ? { ...l, sourceMode } : l))
        await install(consumer.id, next)
        await links.replaceFor(consumer.id, next)
        peerActivity('peer.updated', consumer.id, `VM ${consumer.id}: link ${alias} source mode ${sourceMode}`, { alias, sourceMode })
        return links.listFor(consumer.id)
      })
    },
  }
}
export type PeerLinks = ReturnType<typeof createPeerLinks>
