// Image seed snapshots: per image, one VM booted once, its agent and runtimes warmed, then
// snapshotted. A plain create of the seed's shape resumes from it instead of booting a kernel.
// Seeds are rebuilt when the image files change; a broken seed only costs speed (the create
// boots cold), never a failed create.
import type { FastifyBaseLogger } from 'fastify'
import { AgentPaths } from '@rds/protocol'
import type { Config } from '../config.ts'
import type { ImagesRepo } from '../store/images-repo.ts'
import type { SnapshotRecord, SnapshotsRepo } from '../store/snapshots-repo.ts'
import type { VmsRepo } from '../store/vms-repo.ts'
import { imageStamp, type ImageService } from './images.ts'
import type { Machines } from './machines.ts'
import type { SnapshotService } from './snapshots.ts'
import type { VmCreation } from './vm-create.ts'
import type { VmService } from './vms.ts'

/** What the seed runs once before its snapshot, so clones find these code paths warm. */
const WARM_UP = [
  { path: AgentPaths.exec, body: { cmd: 'true', timeoutMs: 30_000 } },
  { path: AgentPaths.run, body: { runtime: 'node', code: 'result.set(1)', timeoutMs: 60_000 } },
  { path: AgentPaths.run, body: { runtime: 'deno', code: 'result.set(1)', timeoutMs: 60_000 } },
] as const

export function createSeedService(deps: {
  config: Pick<Config, 'enableImageSeed' | 'seedCpu' | 'seedMemMb'>
  images: ImageService
  imagesRepo: ImagesRepo
  snapshots: SnapshotService
  snapshotsRepo: SnapshotsRepo
  vmsRepo: VmsRepo
  machines: Machines
  log: FastifyBaseLogger
}) {
  const { config, imagesRepo, snapshots, log } = deps
  let creation: VmCreation | undefined
  let vms: VmService | undefined
  const building = new Map<string, Promise<void>>()
  /** Image stamps a rebuild was already tried for in this process: a failing seed is not rebuilt in a loop. */
  const tried = new Map<string, string>()
  let closed = false

  async function warmUp(vmId: string): Promise<void> {
    const agent = deps.machines.get(vmId)?.agent
    if (!agent) throw new Error('seed VM has no agent session')
    for (const step of WARM_UP) {
      const r = await agent.json<{ exitCode?: number }>('POST', step.path, step.body, step.body.timeoutMs + 5000)
      if (r.status !== 200 || r.body.exitCode !== 0) throw new Error(`warm-up ${step.path} failed (status ${r.status}, exit ${r.body.exitCode})`)
    }
  }

  async function build(imageId: string): Promise<void> {
    const image = await deps.images.resolveForBoot(imageId)
    tried.set(imageId, await imageStamp(image.files))
    const previous = (await imagesRepo.get(imageId))?.seedSnapshotId ?? null
    await imagesRepo.updateSeed(imageId, { seedSnapshotId: previous, seedStatus: 'pending', seedError: null })
    const started = Date.now()
    let vmId: string | undefined
    try {
      const vm = await creation!.createInternal('seed', { cpu: config.seedCpu, memMb: config.seedMemMb, imageId })
      vmId = vm.id
      await warmUp(vm.id)
      const snap = await snapshots.take(vm.id, 'image_seed', { quiesce: true })
      await imagesRepo.updateSeed(imageId, { seedSnapshotId: snap.id, seedStatus: 'ready', seedError: null })
      log.info({ imageId, snapshotId: snap.id, ms: Date.now() - started }, 'image seed snapshot ready')
    } catch (err) {
      const message = (err as Error).message.slice(0, 4000)
      log.warn({ imageId, err: message }, 'image seed snapshot failed; creates of this image boot cold')
      await imagesRepo.updateSeed(imageId, { seedSnapshotId: null, seedStatus: 'failed', seedError: message })
    } finally {
      if (vmId) await vms!.removeInternal(vmId).catch(() => undefined)
    }
    await collect(true)
  }

  /** Seed snapshots no image points at any more go once no clone maps them. */
  async function collect(fromBuild: boolean): Promise<void> {
    // Another build may hold a snapshot it has not recorded on its image yet.
    if (building.size > (fromBuild ? 1 : 0)) return
    const current = new Set((await imagesRepo.list()).map((i) => i.seedSnapshotId).filter(Boolean))
    for (const snap of await deps.snapshotsRepo.list(['image_seed'])) {
      if (!current.has(snap.id)) await snapshots.remove(snap.id).catch(() => undefined)
    }
  }

  function ensure(imageId: string): Promise<void> {
    if (closed) return Promise.resolve()
    let p = building.get(imageId)
    if (!p) {
      p = build(imageId).finally(() => building.delete(imageId))
      building.set(imageId, p)
    }
    return p
  }

  /** Does this image need a (new) seed: none yet, or its files changed since the last attempt? */
  async function stale(imageId: string): Promise<boolean> {
    const img = await imagesRepo.get(imageId)
    if (!img?.kernelFilename || !img.initrdFilename || !img.rootfsFilename) return false
    const stamp = await imageStamp((await deps.images.resolveForBoot(imageId)).files).catch(() => undefined)
    if (!stamp || tried.get(imageId) === stamp) return false
    if (img.seedStatus !== 'ready' || !img.seedSnapshotId) return true
    const snap = await deps.snapshotsRepo.get(img.seedSnapshotId)
    return !snap || snap.imageStamp !== stamp
  }

  return {
    /** Wired after construction: creating VMs needs this service and this one creates a VM. */
    bind(c: VmCreation, v: VmService): void {
      creation = c
      vms = v
    },

    /** The seed a create of this shape resumes from, if one is ready; otherwise starts building one. */
    async usable(imageId: string, shape: { cpu: number; memMb: number }): Promise<SnapshotRecord | undefined> {
      if (!config.enableImageSeed || shape.cpu !== config.seedCpu || shape.memMb !== config.seedMemMb) return undefined
      const img = await imagesRepo.get(imageId)
      if (img?.seedStatus === 'ready' && img.seedSnapshotId) {
        const snap = await deps.snapshotsRepo.get(img.seedSnapshotId)
        if (snap) return snap
      }
      if (await stale(imageId)) void ensure(imageId)
      return undefined
    },

    /** A resume from the seed failed: record why, and rebuild once if the image files changed. */
    async failed(imageId: string, reason: string): Promise<void> {
      await imagesRepo.updateSeed(imageId, { seedSnapshotId: null, seedStatus: 'failed', seedError: reason.slice(0, 4000) })
      if (await stale(imageId)) void ensure(imageId)
    },

    /** Manager start: build seeds that are missing or stale, one image after another. */
    async start(): Promise<void> {
      if (!config.enableImageSeed) return
      for (const img of await imagesRepo.list()) {
        if (await stale(img.id)) await ensure(img.id)
      }
    },

    /** An image's files were replaced or the image deleted: rebuild its seed, or drop it. */
    imageChanged(imageId: string): void {
      if (!config.enableImageSeed || closed) return
      void (async () => {
        if (await stale(imageId)) await ensure(imageId)
        else if (!(await imagesRepo.get(imageId))) await collect(false)
      })().catch((err: Error) => log.warn({ imageId, err: err.message }, 'image seed refresh failed'))
    },

    /** Waits for builds in progress (tests, shutdown) and starts no new ones. */
    async close(): Promise<void> {
      closed = true
      await Promise.allSettled([...building.values()])
    },

    ensure,
  }
}
export type SeedService = ReturnType<typeof createSeedService>
