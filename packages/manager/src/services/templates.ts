// Templates: a named definition (image, shape, network policy, files, setup commands) built
// once into a snapshot that VMs are then spawned from, resumed with the setup's result in
// place. Builds run in the background, one at a time (each boots a VM); a change of the
// definition, of its files or of its image starts a new build while the last good snapshot
// keeps serving, and a snapshot no template serves any more is removed once no VM maps it.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import crypto from 'node:crypto'
import { pipeline } from 'node:stream/promises'
import type { Readable } from 'node:stream'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.ts'
import { Errors } from '../errors.ts'
import type { Paths } from '../runtime/storage/paths.ts'
import type { SnapshotsRepo } from '../store/snapshots-repo.ts'
import type { ImagesRepo } from '../store/images-repo.ts'
import type { TemplateDefinition, TemplateRecord, TemplatesRepo } from '../store/templates-repo.ts'
import type { VmRecord } from '../store/vms-repo.ts'
import type { RecordActivity } from './activity/activity-log.ts'
import { SYSTEM_ACTOR } from './activity/request-actor.ts'
import { imageStamp, type ImageService } from './images.ts'
import type { NetworkService } from './network.ts'
import type { SnapshotService } from './snapshots.ts'
import { TemplateBuildError, type TemplateBuilder } from './template-build.ts'
import type { CreateVmInput } from './vm-create.ts'
import type { VmService } from './vms.ts'

export type { TemplateDefinition, TemplateRecord }

/** Lowercase, so one name is one template whatever the caller's spelling; safe as a file name. */
const TEMPLATE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/

/**
 * What a spawn may set: a VM create's fields less what the template fixes (shape, image, the
 * snapshot). Fields the create gains later (TTL, labels) pass through unchanged.
 */
export type SpawnInput = Partial<Omit<CreateVmInput, 'cpu' | 'memMb' | 'imageId' | 'snapshotId' | 'userOverlaySnapshotId' | 'diskSizeMb'>>

export function createTemplateService(deps: {
  config: Pick<Config, 'maxCpu' | 'maxMemMb' | 'maxExecTimeoutMs'>
  paths: Paths
  repo: TemplatesRepo
  snapshotsRepo: SnapshotsRepo
  imagesRepo: ImagesRepo
  images: ImageService
  network: NetworkService
  snapshots: SnapshotService
  vms: VmService
  builder: TemplateBuilder
  activity: RecordActivity
  log: FastifyBaseLogger
}) {
  const { config, paths, repo, log } = deps
  /** Names with a build queued that has not started: it will read the definition as it is then. */
  const queued = new Set<string>()
  let queue: Promise<void> = Promise.resolve()
  let closed = false
  const warn = (what: string) => (err: Error) => log.warn({ err: err.message }, what)

  /** Builds and collections run one after the other: a collection never sees a build's snapshot before it is recorded. */
  function serially(task: () => Promise<void>): Promise<void> {
    const run = queue.then(() => (closed ? undefined : task()))
    queue = run.catch(warn('template task failed'))
    return run
  }

  function checkName(name: string): void {
    if (!TEMPLATE_NAME.test(name)) throw Errors.invalidTemplateName(name)
  }

  async function mustGet(name: string): Promise<TemplateRecord> {
    checkName(name)
    const t = await repo.get(name)
    if (!t) throw Errors.templateNotFound(name)
    return t
  }

  /** Everything about a definition that can be checked before a VM boots (the image too: a typo is a 404 now, not a failed build). */
  async function validate(d: TemplateDefinition): Promise<void> {
    if (!Number.isInteger(d.cpu) || d.cpu <= 0 || d.cpu > config.maxCpu) throw Errors.invalidCpu(config.maxCpu)
    if (!Number.isInteger(d.memMb) || d.memMb < 128 || d.memMb > config.maxMemMb) throw Errors.invalidMemMb(config.maxMemMb)
    if (d.setupTimeoutMs !== undefined && d.setupTimeoutMs > config.maxExecTimeoutMs) throw Errors.timeoutTooLarge('maxExecTimeoutMs', config.maxExecTimeoutMs)
    deps.network.validate({ allowIps: d.allowIps, allowDomains: d.allowDomains ?? [], outboundInternet: d.outboundInternet ?? false })
    await deps.images.resolveForBoot(d.imageId)
  }

  function enqueue(name: string): void {
    if (closed || queued.has(name)) return
    queued.add(name)
    void serially(async () => {
      queued.delete(name)
      await build(name)
      await collect()
    })
  }

  async function build(name: string): Promise<void> {
    const t = await repo.get(name)
    if (!t || t.status !== 'building') return
    const started = Date.now()
    try {
      const { snapshot, imageId, steps } = await deps.builder.build(t)
      const recorded = await repo.finishBuild(t, { status: 'ready', error: null, setupOutput: steps, snapshotId: snapshot.id, builtImageId: imageId, builtAt: new Date().toISOString() })
      // Changed or deleted during the build: the next build (if any) is queued already; this snapshot serves nobody.
      if (!recorded) return
      deps.activity({ type: 'template.ready', entityType: 'template', entityId: name, actor: SYSTEM_ACTOR, message: `Template ${name} built`, meta: { snapshotId: snapshot.id, imageId, buildMs: Date.now() - started } })
    } catch (err) {
      const steps = err instanceof TemplateBuildError ? err.steps : []
      const message = (err as Error).message.slice(0, 4000)
      log.warn({ template: name, err: message }, 'template build failed')
      if (await repo.finishBuild(t, { status: 'failed', error: message, setupOutput: steps })) {
        deps.activity({ type: 'template.failed', entityType: 'template', entityId: name, actor: SYSTEM_ACTOR, message: `Template ${name}: build failed`, meta: { error: message, steps: steps.length } })
      }
    }
  }

  /** Template snapshots no template serves go, unless a spawned VM still maps one (then when it lets go). Runs serially only. */
  async function collect(): Promise<void> {
    const serving = await repo.servingSnapshotIds()
    for (const snap of await deps.snapshotsRepo.list(['template'])) {
      if (!serving.has(snap.id)) await deps.snapshots.remove(snap.id).catch(() => undefined)
    }
  }

  /** The image a template would be built on now. */
  async function imageFor(t: TemplateRecord): Promise<string | undefined> {
    return t.definition.imageId ?? (await deps.imagesRepo.getDefaultId())
  }

  /** A ready template whose image is another one now (a new default) or whose image files were replaced. */
  async function isStale(t: TemplateRecord): Promise<boolean> {
    if (t.status !== 'ready' || !t.snapshotId) return false
    if ((await imageFor(t)) !== t.builtImageId) return true
    const snap = await deps.snapshotsRepo.get(t.snapshotId)
    if (!snap) return true
    const stamp = await deps.images
      .resolveForBoot(t.builtImageId ?? undefined)
      .then((img) => imageStamp(img.files))
      .catch(() => undefined)
    return stamp !== snap.imageStamp
  }

  async function rebuild(t: TemplateRecord, reason: string): Promise<void> {
    if ((await repo.redefine(t.name, {})) === undefined) return
    deps.activity({ type: 'template.updated', entityType: 'template', entityId: t.name, actor: SYSTEM_ACTOR, message: `Template ${t.name}: rebuilding (${reason})`, meta: { reason } })
    enqueue(t.name)
  }

  async function rebuildStale(): Promise<void> {
    for (const t of await repo.list()) {
      if (await isStale(t)) await rebuild(t, 'its image changed')
    }
  }

  /** Streams an archive beside its final name and renames it: a build reading the old one keeps reading the old one. */
  async function storeFiles(name: string, body: Readable): Promise<void> {
    await fsp.mkdir(paths.templatesRoot, { recursive: true, mode: 0o700 })
    const tmp = `${paths.templateFiles(name)}.${crypto.randomUUID()}.part`
    try {
      await pipeline(body, fs.createWriteStream(tmp, { mode: 0o600 }))
      await fsp.rename(tmp, paths.templateFiles(name))
    } catch (err) {
      await fsp.rm(tmp, { force: true })
      throw err
    }
  }

  return {
    get: mustGet,
    list: () => repo.list(),

    /** Records the template and queues its first build (files staged under its name are part of it). */
    async create(input: TemplateDefinition & { name: string }, createdBy: string | null): Promise<TemplateRecord> {
      const { name, ...definition } = input
      checkName(name)
      await validate(definition)
      const hasFiles = fs.existsSync(paths.templateFiles(name))
      if (!(await repo.insert({ name, definition, hasFiles, createdBy }))) throw Errors.templateExists(name)
      deps.activity({ type: 'template.created', entityType: 'template', entityId: name, message: `Template ${name} created`, meta: { cpu: definition.cpu, memMb: definition.memMb, imageId: definition.imageId ?? null, setupSteps: definition.setup.length, hasFiles } })
      enqueue(name)
      return mustGet(name)
    },

    /** Replaces the definition and rebuilds; VMs keep being spawned from the last good build until the new one is ready. */
    async update(name: string, definition: TemplateDefinition): Promise<TemplateRecord> {
      await mustGet(name)
      await validate(definition)
      if ((await repo.redefine(name, { definition })) === undefined) throw Errors.templateNotFound(name)
      deps.activity({ type: 'template.updated', entityType: 'template', entityId: name, message: `Template ${name} changed; rebuilding`, meta: { reason: 'definition changed' } })
      enqueue(name)
      return mustGet(name)
    },

    /**
     * Stores the files (a tar.gz unpacked into /workspace before the setup). For an existing
     * template this is a change like PUT: it is rebuilt. For a name not created yet they are
     * staged: the create of that name uses them.
     */
    async putFiles(name: string, body: Readable): Promise<{ staged: boolean }> {
      checkName(name)
      await storeFiles(name, body)
      const t = await repo.get(name)
      if (!t) return { staged: true }
      await repo.redefine(name, { hasFiles: true })
      deps.activity({ type: 'template.updated', entityType: 'template', entityId: name, message: `Template ${name}: new files; rebuilding`, meta: { reason: 'files changed' } })
      enqueue(name)
      return { staged: false }
    },

    /**
     * Removes the template and its files at once. VMs spawned from it keep running: its snapshot
     * goes when the last of them lets go of its memory. A build in progress records nothing.
     */
    async remove(name: string): Promise<void> {
      checkName(name)
      const t = await repo.get(name)
      const staged = fs.existsSync(paths.templateFiles(name))
      if (!t && !staged) throw Errors.templateNotFound(name)
      await repo.remove(name)
      await fsp.rm(paths.templateFiles(name), { force: true })
      if (t) deps.activity({ type: 'template.deleted', entityType: 'template', entityId: name, message: `Template ${name} deleted` })
      void serially(collect)
    },

    /** A VM resumed from the template's last good build, with the caller's policy and secrets. */
    async spawn(name: string, input: SpawnInput): Promise<VmRecord> {
      const t = await mustGet(name)
      const snap = t.snapshotId ? await deps.snapshotsRepo.get(t.snapshotId) : undefined
      if (!snap) throw Errors.templateNotReady(name, t.status, t.error)
      // Checked at every spawn too: a default image set by another manager on the same database is seen here.
      if (await isStale(t)) await rebuild(t, 'its image changed').catch(warn('template rebuild failed to start'))
      const d = t.definition
      const request: CreateVmInput = {
        allowIps: d.allowIps,
        allowDomains: d.allowDomains,
        outboundInternet: d.outboundInternet,
        ...input,
        cpu: snap.cpu,
        memMb: snap.memMb,
        imageId: snap.imageId,
      }
      return deps.vms.createFromTemplate(request, snap, name)
    },

    /**
     * Manager start: a build a restart interrupted is failed (its VM and snapshot files are gone
     * with the startup reconciliation), staged files of names never created are dropped,
     * retired snapshots collected, and templates whose image changed rebuilt.
     */
    async start(): Promise<void> {
      for (const t of await repo.list()) {
        if (t.status === 'building') await repo.finishBuild(t, { status: 'failed', error: 'The manager restarted during the build; PUT the template to build it again', setupOutput: t.setupOutput })
      }
      const names = new Set((await repo.list()).map((t) => t.name))
      for (const file of await fsp.readdir(paths.templatesRoot).catch(() => [] as string[])) {
        const name = file.endsWith('.tar.gz') ? file.slice(0, -'.tar.gz'.length) : undefined
        if (!name || !names.has(name)) await fsp.rm(`${paths.templatesRoot}/${file}`, { force: true })
      }
      await serially(collect)
      await rebuildStale()
    },

    /** An image's files were replaced or an image deleted. */
    imageChanged(): void {
      if (closed) return
      void rebuildStale().catch(warn('template image check failed'))
    },

    /** Templates that name no image follow the default. */
    defaultChanged(): void {
      if (closed) return
      void rebuildStale().catch(warn('template image check failed'))
    },

    /** A VM stopped mapping a snapshot's memory: if that was a retired template build, it can go now. */
    released(snapshotId: string): void {
      if (closed) return
      void (async () => {
        if ((await deps.snapshotsRepo.get(snapshotId))?.kind !== 'template') return
        await serially(collect)
      })().catch(warn('removing a retired template snapshot failed'))
    },

    count: () => repo.count(),

    /**
     * Queued builds never start. The one in progress is not waited for (a setup may take many
     * minutes): the next start fails it and removes its VM, as after a crash.
     */
    close(): void {
      closed = true
    },
  }
}
export type TemplateService = ReturnType<typeof createTemplateService>
