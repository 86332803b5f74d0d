// One build of a template: a VM booted cold from the template's image with its shape and
// network policy, its files unpacked into /workspace, each setup command run as the sandbox
// user (as exec does) until the first one that fails, then a snapshot of the VM. The build VM
// is removed whatever happens, and a failed build keeps no snapshot: nothing is left half made.
import fs from 'node:fs'
import type { FastifyBaseLogger } from 'fastify'
import { plainTarMaxBytes } from '@rds/protocol'
import type { Config } from '../config.ts'
import type { Paths } from '../runtime/storage/paths.ts'
import type { Supervisor } from '../runtime/supervisor/supervisor.ts'
import type { SnapshotRecord } from '../store/snapshots-repo.ts'
import type { SetupStep, TemplateRecord } from '../store/templates-repo.ts'
import { askAgent } from './agent-fault.ts'
import { inflateUpload } from './archive-gzip.ts'
import type { ImageService } from './images.ts'
import type { SnapshotService } from './snapshots.ts'
import type { Provisioner } from './vm-provision.ts'

/** Each stream of a setup step keeps its end: the last lines say why a command failed. */
export const SETUP_OUTPUT_TAIL = 4096
/** What the agent collects of a step's stream before cutting (the tail is taken from this). */
const SETUP_OUTPUT_MAX_BYTES = 1024 * 1024
/** Beyond a step's own timeout, how long the manager waits for the agent's answer. */
const REPLY_GRACE_MS = 15_000
const UPLOAD_TIMEOUT_MS = 30 * 60_000

/** A build that did not produce a snapshot: why, and the steps that ran. */
export class TemplateBuildError extends Error {
  readonly steps: SetupStep[]
  constructor(message: string, steps: SetupStep[]) {
    super(message)
    this.steps = steps
  }
}

export const tail = (text: string, max = SETUP_OUTPUT_TAIL): string => (text.length > max ? `…${text.slice(text.length - max)}` : text)

export function createTemplateBuilder(deps: {
  config: Pick<Config, 'maxExecTimeoutMs' | 'uploadMaxEntries' | 'uploadMaxBytes'>
  paths: Paths
  images: ImageService
  provisioner: Provisioner
  supervisor: Supervisor
  snapshots: SnapshotService
  log: FastifyBaseLogger
}) {
  const { config, paths, provisioner, log } = deps

  function agentOf(vmId: string) {
    const m = deps.supervisor.get(vmId)
    if (!m) throw new Error('the build VM has no agent session')
    return m.agent
  }

  async function unpackFiles(vmId: string, name: string): Promise<void> {
    const limits = { maxEntries: config.uploadMaxEntries, maxBytes: config.uploadMaxBytes }
    const body = inflateUpload(fs.createReadStream(paths.templateFiles(name)), plainTarMaxBytes(limits))
    try {
      await askAgent(vmId, agentOf(vmId).upload('upload', { dest: '/workspace', ...limits }, body, UPLOAD_TIMEOUT_MS))
    } finally {
      body.destroy()
    }
  }

  async function runSetup(vmId: string, t: TemplateRecord, steps: SetupStep[]): Promise<void> {
    const timeoutMs = t.definition.setupTimeoutMs ?? config.maxExecTimeoutMs
    for (const cmd of t.definition.setup) {
      const env = t.definition.env && Object.keys(t.definition.env).length ? t.definition.env : undefined
      const r = await askAgent(vmId, agentOf(vmId).call('exec', { cmd, env, timeoutMs, maxOutputBytes: SETUP_OUTPUT_MAX_BYTES }, timeoutMs + REPLY_GRACE_MS))
      steps.push({ cmd, exitCode: r.exitCode, timedOut: r.timedOut, durationMs: Math.round(r.durationMs), stdout: tail(r.stdout), stderr: tail(r.stderr) })
      if (r.timedOut) throw new TemplateBuildError(`setup command ${steps.length} timed out after ${timeoutMs} ms: ${cmd}`, steps)
      if (r.exitCode !== 0) throw new TemplateBuildError(`setup command ${steps.length} exited with ${r.exitCode}: ${cmd}`, steps)
    }
  }

  return {
    /** Builds `t` as it is now; the snapshot is the caller's to record (or remove). */
    async build(t: TemplateRecord): Promise<{ snapshot: SnapshotRecord; imageId: string; steps: SetupStep[] }> {
      const steps: SetupStep[] = []
      let vmId: string | undefined
      const started = Date.now()
      try {
        const image = await deps.images.resolveForBoot(t.definition.imageId)
        const { cpu, memMb, allowIps, allowDomains, outboundInternet } = t.definition
        // A cold boot, never a seed: the template's snapshot must not carry a seed's clock and entropy on to every spawn.
        const vm = await provisioner.create({ cpu, memMb, imageId: image.id, purpose: 'template', allowIps, allowDomains, outboundInternet }, image.files, {})
        vmId = vm.id
        if (t.hasFiles) await unpackFiles(vm.id, t.name)
        await runSetup(vm.id, t, steps)
        const snapshot = await deps.snapshots.take(vm.id, 'template', { quiesce: true })
        log.info({ template: t.name, snapshotId: snapshot.id, ms: Date.now() - started }, 'template built')
        return { snapshot, imageId: image.id, steps }
      } catch (err) {
        if (err instanceof TemplateBuildError) throw err
        throw new TemplateBuildError((err as Error).message, steps)
      } finally {
        if (vmId) await provisioner.destroyById(vmId).catch((err: Error) => log.warn({ template: t.name, vmId, err: err.message }, 'removing a template build VM failed'))
      }
    },
  }
}
export type TemplateBuilder = ReturnType<typeof createTemplateBuilder>
