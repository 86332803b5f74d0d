// Image seed snapshots: per image and VM shape, one VM booted once, its agent and runtimes
// warmed, then snapshotted. A plain create of that shape resumes from it instead of booting a
// kernel. The template shape (SNAPSHOT_TEMPLATE_*) is seeded at start; any other shape after
// its first cold boot, up to SEED_SHAPES_MAX per image (least recently used dropped first).
// Seeds are rebuilt when the image files change; a broken seed only costs speed (the create
// boots cold), never a failed create.
import type { RecordActivity } from './activity/activity-log.ts'
import { SYSTEM_ACTOR } from './activity/request-actor.ts'
import type { FastifyBaseLogger } from 'fastify'
import type { ExecRequest, RunRequest } from '@rds/protocol'
import type { Config } from '../config.ts'
import { ApiError } from '../errors.ts'
import type { Paths } from '../runtime/storage/paths.ts'
import type { ImagesRepo } from '../store/images-repo.ts'
import type { ImageSeedsRepo, SeedShape } from '../store/image-seeds-repo.ts'
import type { SnapshotsRepo } from '../store/snapshots-repo.ts'
import { imageStamp, type ImageService } from './images.ts'
import type { Supervisor } from '../runtime/supervisor/supervisor.ts'
import { sameShape, seedKey, seedsToDrop } from './seed-eviction.ts'
import type { SnapshotService } from './snapshots.ts'
import type { SeedSource } from './vm-create.ts'
import type { Provisioner } from './vm-provision.ts'

/** What the seed runs once before its snapshot, so clones find these code paths warm. */
const WARM_UP: Array<{ route: 'exec'; body: ExecRequest & { timeoutMs: number } } | { route: 'run'; body: RunRequest & { timeoutMs: number } }> = [
  { route: 'exec', body: { cmd: 'true', timeoutMs: 30_000 } },
  // warm: false — a runtime started ahead in the seed would be restored in every clone with the
  // same RNG state; clones discard any at /init, so it would only cost the seed memory.
  { route: 'run', body: { runtime: 'node', code: 'result.set(1)', timeoutMs: 60_000, warm: false } },
  { route: 'run', body: { runtime: 'deno', code: 'result.set(1)', timeoutMs: 60_000, warm: false } },
]

export function createSeedService(deps: {
  config: Pick<Config, 'enableImageSeed' | 'seedCpu' | 'seedMemMb' | 'seedShapesMax'>
  images: ImageService
  paths: Paths
  imagesRepo: ImagesRepo
  seedsRepo: ImageSeedsRepo
  snapshots: SnapshotService
  snapshotsRepo: SnapshotsRepo
  supervisor: Supervisor
  provisioner: Provisioner
  activity: RecordActivity
  log: FastifyBaseLogger
}) {
  const { config, imagesRepo, seedsRepo, snapshots, provisioner, log } = deps
  const template: SeedShape = { cpu: config.seedCpu, memMb: config.seedMemMb }
  /** Builds queued or running, by image and shape. */
  const building = new Map<string, { imageId: string; shape: SeedShape; done: Promise<void> }>()
  /** Image stamps a build was already tried for in this process, by image and shape: a failing seed is not rebuilt in a loop. */
  const tried = new Map<string, string>()
  let queue: Promise<void> = Promise.resolve()
  let closed = false

  /**
   * Builds and collections run one at a time. Two builds at once would share the host's cores
   * and take twice the guest RAM from user VMs, and a collection must never see a new seed
   * snapshot before its build has recorded it.
   */
  function serially(task: () => Promise<void>): Promise<void> {
    const run = queue.then(() => (closed ? undefined : task()))
    queue = run.catch(() => undefined)
    return run
  }

  async function warmUp(vmId: string): Promise<void> {
    const agent = deps.supervisor.get(vmId)?.agent
    if (!agent) throw new Error('seed VM has no agent session')
    for (const step of WARM_UP) {
      const deadline = step.body.timeoutMs + 5000
      const r = step.route === 'exec' ? await agent.call('exec', step.body, deadline) : await agent.call('run', step.body, deadline)
      if (r.exitCode !== 0) throw new Error(`warm-up ${step.route} failed (exit ${r.exitCode})`)
    }
  }

  async function build(imageId: string, shape: SeedShape): Promise<void> {
    const key = seedKey(imageId, shape)
    const image = await deps.images.resolveForBoot(imageId)
    tried.set(key, await imageStamp(image.files))
    const previous = await seedsRepo.get(imageId, shape)
    await seedsRepo.put(imageId, shape, { status: 'pending', snapshotId: previous?.snapshotId ?? null, error: null })
    const started = Date.now()
    let vmId: string | undefined
    let built = false
    try {
      // Always a cold boot: a seed made from a seed would carry its clock and entropy on.
      const vm = await provisioner.create({ ...shape, imageId, purpose: 'seed' }, image.files, {})
      vmId = vm.id
      await warmUp(vm.id)
      const snap = await snapshots.take(vm.id, 'image_seed', { quiesce: true })
      await seedsRepo.put(imageId, shape, { status: 'ready', snapshotId: snap.id, error: null }, { used: true })
      built = true
      log.info({ imageId, ...shape, snapshotId: snap.id, ms: Date.now() - started }, 'image seed snapshot ready')
      // Built in the background, whoever's create asked for the shape first.
      deps.activity({ type: 'snapshot.seed_ready', entityType: 'image', entityId: imageId, actor: SYSTEM_ACTOR, message: `Image ${imageId}: seed for ${shape.cpu} vCPU / ${shape.memMb} MiB ready`, meta: { ...shape, snapshotId: snap.id, buildMs: Date.now() - started } })
    } catch (err) {
      if (err instanceof ApiError && err.code === 'host_memory_exhausted') {
        // No room next to the running VMs: no seed this time, and the shape's next cold boot may try again.
        tried.delete(key)
        await seedsRepo.remove(imageId, shape)
        log.warn({ imageId, ...shape }, 'image seed not built: no room in VM_RAM_DIR')
      } else {
        const message = (err as Error).message.slice(0, 4000)
        log.warn({ imageId, ...shape, err: message }, 'image seed snapshot failed; creates of this shape boot cold')
        await seedsRepo.put(imageId, shape, { status: 'failed', snapshotId: null, error: message })
      }
    } finally {
      if (vmId) await provisioner.destroyById(vmId).catch(() => undefined)
    }
    await prune(imageId, shape, !built)
    await collect()
  }

  /** Drops other shapes' seeds beyond SEED_SHAPES_MAX; their snapshots go in the next collection. */
  async function prune(imageId: string, justBuilt: SeedShape | undefined, onlyUnusable: boolean): Promise<void> {
    const keep = [...(justBuilt ? [justBuilt] : []), ...[...building.values()].filter((b) => b.imageId === imageId).map((b) => b.shape)]
    for (const shape of seedsToDrop(await seedsRepo.list(imageId), { template, max: config.seedShapesMax, keep, onlyUnusable })) {
      await seedsRepo.remove(imageId, shape)
      // Asked for again later, the shape is seeded again.
      tried.delete(seedKey(imageId, shape))
      log.info({ imageId, ...shape }, 'image seed dropped: SEED_SHAPES_MAX reached and this shape was used least recently')
    }
  }

  /** Seed snapshots no shape points at any more go once no clone maps them. Runs serially only. */
  async function collect(): Promise<void> {
    await seedsRepo.removeOrphans()
    const current = new Set((await seedsRepo.list()).map((s) => s.snapshotId).filter(Boolean))
    for (const snap of await deps.snapshotsRepo.list(['image_seed'])) {
      // Refused while a clone maps its memory: tried again when a VM lets go of it (released).
      if (!current.has(snap.id)) await snapshots.remove(snap.id).catch(() => undefined)
    }
  }

  function ensure(imageId: string, shape: SeedShape): Promise<void> {
    if (closed) return Promise.resolve()
    const key = seedKey(imageId, shape)
    let entry = building.get(key)
    if (!entry) {
      const done = serially(() => build(imageId, shape))
        .catch((err: Error) => log.warn({ imageId, ...shape, err: err.message }, 'image seed build did not start'))
        .finally(() => building.delete(key))
      entry = { imageId, shape: { cpu: shape.cpu, memMb: shape.memMb }, done }
      building.set(key, entry)
    }
    return entry.done
  }

  /**
   * Does this shape need a (new) seed: none yet, the image files changed since the last attempt,
   * or the seed's guest RAM is not the size a boot gives now (a seed from before TCG guests got
   * their 8 KiB more, runtime/vmm/qemu/guest-ram.ts: it still resumes, but its clones could
   * only be saved stopped).
   */
  async function needsBuild(imageId: string, shape: SeedShape): Promise<boolean> {
    if (!config.enableImageSeed || closed) return false
    if (!sameShape(shape, template) && config.seedShapesMax < 2) return false
    const img = await imagesRepo.get(imageId)
    // Without an initrd, resolveForBoot decides (it refuses a kernel that needs one).
    if (!img?.kernelFilename || !img.rootfsFilename) return false
    const stamp = await imageStamp((await deps.images.resolveForBoot(imageId)).files).catch(() => undefined)
    if (!stamp || tried.get(seedKey(imageId, shape)) === stamp) return false
    const seed = await seedsRepo.get(imageId, shape)
    if (seed?.status !== 'ready' || !seed.snapshotId) return true
    const snap = await deps.snapshotsRepo.get(seed.snapshotId)
    return !snap || snap.imageStamp !== stamp || snap.ramBytes !== deps.supervisor.bootRamBytes(shape.memMb)
  }

  /** The template first, then the other shapes the image has seeds for, most recently used first. */
  async function shapesOf(imageId: string): Promise<SeedShape[]> {
    const others = (await seedsRepo.list(imageId)).filter((s) => !sameShape(s, template))
    others.sort((a, b) => (b.lastUsedAt ?? '').localeCompare(a.lastUsedAt ?? ''))
    return [template, ...others.map(({ cpu, memMb }) => ({ cpu, memMb }))]
  }

  const warn = (what: string) => (err: Error) => log.warn({ err: err.message }, what)

  const source: SeedSource = {
    /** How a create of this shape resumes from its seed, if one is ready and its files are sound. */
    async restorePlan(imageId, shape, files) {
      if (!config.enableImageSeed) return undefined
      const seed = await seedsRepo.get(imageId, shape)
      if (seed?.status !== 'ready' || !seed.snapshotId) return undefined
      const snap = await deps.snapshotsRepo.get(seed.snapshotId)
      if (!snap) return undefined
      try {
        const from = await snapshots.restorePoint(snap, files)
        return { disk: deps.paths.snapshotOverlay(snap.id), from, memorySnapshotId: snap.id }
      } catch (err) {
        // A broken seed never breaks a create: boot cold and have the seed rebuilt.
        await source.failed(imageId, shape, (err as Error).message)
        return undefined
      }
    },

    /** A create resumed from the shape's seed: it is the last one an image gives up. */
    used(imageId, shape) {
      void seedsRepo.touch(imageId, shape).catch(warn('recording an image seed use failed'))
    },

    /** A plain create of this shape booted cold: seed the shape so the next one resumes. */
    coldBooted(imageId, shape) {
      void (async () => {
        if (await needsBuild(imageId, shape)) void ensure(imageId, shape)
      })().catch(warn('starting an image seed build failed'))
    },

    /** A resume from the seed failed: record why, and rebuild once if the image files changed. */
    async failed(imageId, shape, reason) {
      await seedsRepo.put(imageId, shape, { status: 'failed', snapshotId: null, error: reason.slice(0, 4000) })
      if (await needsBuild(imageId, shape)) void ensure(imageId, shape)
    },
  }

  return {
    ...source,

    /**
     * Manager start: a lowered SEED_SHAPES_MAX takes effect, then the template seeds that are
     * missing or stale are built (resolves when they are), then the other shapes' (in the background).
     */
    async start(): Promise<void> {
      if (!config.enableImageSeed) return
      const images = await imagesRepo.list()
      await serially(async () => {
        for (const img of images) await prune(img.id, undefined, false)
        await collect()
      })
      for (const img of images) {
        if (await needsBuild(img.id, template)) await ensure(img.id, template)
      }
      for (const img of images) {
        for (const shape of (await shapesOf(img.id)).slice(1)) {
          if (await needsBuild(img.id, shape)) void ensure(img.id, shape)
        }
      }
    },

    /** An image's files were replaced or the image deleted: rebuild its seeds, or drop them. */
    imageChanged(imageId: string): void {
      if (!config.enableImageSeed || closed) return
      void (async () => {
        if (!(await imagesRepo.get(imageId))) return serially(collect)
        for (const shape of await shapesOf(imageId)) {
          if (await needsBuild(imageId, shape)) void ensure(imageId, shape)
        }
      })().catch(warn('image seed refresh failed'))
    },

    /** A VM stopped mapping a snapshot's memory: if that was a dropped seed, it can go now. */
    released(snapshotId: string): void {
      if (!config.enableImageSeed || closed) return
      void (async () => {
        if ((await deps.snapshotsRepo.get(snapshotId))?.kind !== 'image_seed') return
        if ((await seedsRepo.list()).some((s) => s.snapshotId === snapshotId)) return
        await serially(collect)
      })().catch(warn('removing a dropped image seed failed'))
    },

    /** Waits for the build in progress (tests, shutdown); queued ones and new ones never start. */
    async close(): Promise<void> {
      closed = true
      await Promise.allSettled([...building.values()].map((b) => b.done))
      await queue
    },
  }
}
export type SeedService = ReturnType<typeof createSeedService>
