// Creating VMs: checking a request, choosing where the new VM's state comes from (a snapshot,
// an image seed of its shape, or a cold boot), and provisioning it with an undo stack so a failure leaves
// nothing behind. Also the manager's own VMs (seed, warm pool) and handing a warm VM out. The
// verbs on existing VMs are in vms.ts; both take the same per-VM lock.
import crypto from 'node:crypto'
import fsp from 'node:fs/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.ts'
import { Errors, ApiError, recode } from '../errors.ts'
import { Cleanup } from '../runtime/cleanup.ts'
import { copySparse } from '../runtime/storage/copy.ts'
import { createOverlay } from '../runtime/storage/overlay.ts'
import type { Paths } from '../runtime/storage/paths.ts'
import type { VmRecord, VmsRepo } from '../store/vms-repo.ts'
import type { SnapshotRecord } from '../store/snapshots-repo.ts'
import type { SeedShape } from '../store/image-seeds-repo.ts'
import type { BootFiles, ImageService } from './images.ts'
import type { KeyedLock } from './locks.ts'
import type { Machines, RestorePoint } from './machines.ts'
import type { SnapshotService } from './snapshots.ts'
import type { NetworkService } from './network.ts'
import type { PeerLinkInput, PeerLinks, PreparedLink } from './peers/peer-links.ts'
import { parseSecretEnv, type SecretBox } from './secret-env.ts'

export interface CreateVmInput {
  cpu: number
  memMb: number
  allowIps: string[]
  allowDomains?: string[]
  secretEnv?: string[]
  outboundInternet?: boolean
  imageId?: string
  diskSizeMb?: number
  peerLinks?: PeerLinkInput[]
  snapshotId?: string
  /** The original's name for snapshotId. */
  userOverlaySnapshotId?: string
}

/** What creating a VM needs of the image seeds (image-seeds.ts, which itself creates VMs). */
export interface SeedSource {
  usable(imageId: string, shape: SeedShape): Promise<SnapshotRecord | undefined>
  used(imageId: string, shape: SeedShape): void
  coldBooted(imageId: string, shape: SeedShape): void
  failed(imageId: string, shape: SeedShape, reason: string): Promise<void>
}

/** How a new VM gets its disk and whether it resumes from memory. */
interface ProvisionPlan {
  /** Overlay to copy (a snapshot's); a fresh empty overlay when absent. */
  disk?: string
  from?: RestorePoint
}

export function createVmCreation(deps: {
  config: Config
  paths: Paths
  repo: VmsRepo
  images: ImageService
  machines: Machines
  network: NetworkService
  secrets: SecretBox
  snapshots: SnapshotService
  seeds: SeedSource
  locks: KeyedLock
  /** A getter: linking runs code in providers through vm-exec, which itself looks VMs up in vms.ts. */
  peers: () => PeerLinks
  log: FastifyBaseLogger
}) {
  const { config, paths, repo, images, machines, network, snapshots, log } = deps
  const lock = deps.locks
  const reason = (err: unknown) => (err as Error).message

  function validateResources(input: { cpu: number; memMb: number; diskSizeMb?: number }): void {
    if (!Number.isInteger(input.cpu) || input.cpu <= 0 || input.cpu > config.maxCpu) throw Errors.invalidCpu(config.maxCpu)
    if (!Number.isInteger(input.memMb) || input.memMb < 128 || input.memMb > config.maxMemMb) throw Errors.invalidMemMb(config.maxMemMb)
    // Checked with the original's messages, though the overlay size is OVERLAY_SIZE_BYTES (as there).
    if (input.diskSizeMb !== undefined && !(Number.isFinite(input.diskSizeMb) && input.diskSizeMb > 0)) throw Errors.invalidDiskSize('Invalid diskSizeMb')
    if (input.diskSizeMb !== undefined && input.diskSizeMb > 1_048_576) throw Errors.invalidDiskSize('diskSizeMb too large')
  }

  function newRecord(id: string, input: CreateVmInput, imageId: string, extra: Pick<VmRecord, 'purpose' | 'secretEnv' | 'sourceSnapshotId' | 'memorySnapshotId'>): VmRecord {
    return {
      id,
      state: 'CREATED',
      cpu: input.cpu,
      memMb: input.memMb,
      imageId,
      guestIp: null,
      allowIps: input.allowIps,
      allowDomains: input.allowDomains ?? [],
      outboundInternet: input.outboundInternet ?? false,
      provisionMode: null,
      createdAt: new Date().toISOString(),
      startedAt: null,
      bootMs: null,
      lastError: null,
      vmmPid: null,
      vmmStartTime: null,
      ...extra,
    }
  }

  /**
   * Gives an inserted VM its address, TAP, disk and a running VMM (booted or resumed). On
   * failure everything it acquired is released, the row included.
   */
  async function provision(vm: VmRecord, files: BootFiles, plan: ProvisionPlan, peerLinks: PreparedLink[] = []): Promise<VmRecord> {
    return lock.run(vm.id, async () => {
      const undo = new Cleanup()
      undo.add('database row', () => repo.remove(vm.id))
      // Stage times go to the log: where a slow create spent its time.
      const t0 = performance.now()
      const stages: Record<string, number> = {}
      const stage = (name: string) => (stages[`${name}Ms`] = Math.round(performance.now() - t0 - Object.values(stages).reduce((a, b) => a + b, 0)))
      try {
        vm.guestIp = await network.allocate(vm.id)
        undo.add('TAP and rules', () => network.detach(vm))
        const net = await network.attach(vm)
        stage('network')
        await fsp.mkdir(paths.vmDir(vm.id), { recursive: true, mode: 0o700 })
        undo.add('VM directory', () => fsp.rm(paths.vmDir(vm.id), { recursive: true, force: true }))
        if (plan.disk) await copySparse(plan.disk, paths.overlay(vm.id))
        else await createOverlay(paths.overlay(vm.id), config.overlaySizeBytes)
        stage('disk')
        undo.add('VMM process', () => machines.kill(vm.id))
        const { bootMs } = await machines.boot(vm, files, net, plan.from)
        stage('vmm')
        if (peerLinks.length) {
          undo.add('peer links', () => deps.peers().forget(vm.id))
          await deps.peers().attach(vm.id, peerLinks)
          stage('peers')
        }
        const patch = { state: 'RUNNING' as const, provisionMode: plan.from ? ('snapshot' as const) : ('boot' as const), startedAt: new Date().toISOString(), bootMs }
        await repo.update(vm.id, patch)
        undo.commit()
        log.info({ vmId: vm.id, mode: patch.provisionMode, purpose: vm.purpose, ...stages, totalMs: Math.round(performance.now() - t0) }, 'VM created')
        return { ...vm, ...patch, vmmPid: machines.get(vm.id)?.handle.pid ?? null }
      } catch (err) {
        const leftovers = await undo.run()
        log.error({ vmId: vm.id, err: reason(err), leftovers }, 'VM create failed; rolled back')
        if (err instanceof ApiError) throw err
        throw Errors.bootFailed(`${plan.from ? 'resume from snapshot failed: ' : ''}${reason(err)}`)
      }
    })
  }

  /**
   * Where a new VM's state comes from: the requested snapshot (resumed when cpu/memMb match,
   * else its disk cold-booted, as the original did), or else the image's seed snapshot when
   * one of the image's seeds has this shape, or else a cold boot.
   */
  async function planFor(input: CreateVmInput, files: BootFiles, imageId: string, snap: SnapshotRecord | undefined): Promise<{ plan: ProvisionPlan; source?: SnapshotRecord }> {
    if (snap) {
      const resume = snap.cpu === input.cpu && snap.memMb === input.memMb
      const point = await snapshots.restorePoint(snap, files)
      return { plan: { disk: paths.snapshotOverlay(snap.id), ...(resume ? { from: point } : {}) }, source: snap }
    }
    const shape = { cpu: input.cpu, memMb: input.memMb }
    const seed = await deps.seeds.usable(imageId, shape)
    if (!seed) return { plan: {} }
    try {
      const from = await snapshots.restorePoint(seed, files)
      return { plan: { disk: paths.snapshotOverlay(seed.id), from }, source: seed }
    } catch (err) {
      // A broken seed never breaks a create: boot cold and have the seed rebuilt.
      await deps.seeds.failed(imageId, shape, reason(err))
      return { plan: {} }
    }
  }

  /** The original's sentence for a create from a snapshot that does not exist. */
  const userSnapshot = (id: string): Promise<SnapshotRecord> => recode(snapshots.get(id), 'snapshot_not_found', Errors.userSnapshotNotFound)

  /** Everything about a create request that can be checked without touching the host. */
  function validateCreate(input: CreateVmInput): Record<string, string> {
    validateResources(input)
    network.validate({ allowIps: input.allowIps, allowDomains: input.allowDomains ?? [], outboundInternet: input.outboundInternet ?? false })
    const secretEnv = parseSecretEnv(input.secretEnv ?? [])
    if (Object.keys(secretEnv).length) deps.secrets.requireKey()
    return secretEnv
  }

  return {
    validateCreate,

    async create(input: CreateVmInput): Promise<VmRecord> {
      const secretEnv = validateCreate(input)
      const snapshotId = input.snapshotId ?? input.userOverlaySnapshotId
      const snap = snapshotId !== undefined ? await userSnapshot(snapshotId) : undefined
      if (snap && snap.kind !== 'user') throw Errors.snapshotKindNotUsable()
      if (snap && input.imageId !== undefined && input.imageId !== snap.imageId) throw Errors.snapshotImageMismatch(snap.imageId, input.imageId)
      const image = await images.resolveForBoot(snap?.imageId ?? input.imageId)
      // Providers are inspected before anything of this VM exists: a bad link leaves nothing behind.
      const peerLinks = await deps.peers().prepare(input.peerLinks ?? [])
      const { plan, source } = await planFor(input, image.files, image.id, snap)
      const id = crypto.randomUUID()
      const sealed = Object.keys(secretEnv).length ? deps.secrets.seal(id, secretEnv) : null
      const insert = async (p: ProvisionPlan) => {
        const vm = newRecord(id, input, image.id, {
          purpose: 'user',
          secretEnv: sealed,
          sourceSnapshotId: snap?.id ?? null,
          // Set before the VMM maps the file, so the snapshot cannot be deleted under the resume.
          memorySnapshotId: p.from?.memoryInFile ? source!.id : null,
        })
        if ((await repo.insertWithinQuota(vm, { maxVms: config.maxVms })) !== 'ok') throw Errors.quotaExceeded('maxVms', config.maxVms)
        return vm
      }
      const shape = { cpu: input.cpu, memMb: input.memMb }
      let created: VmRecord
      try {
        created = await provision(await insert(plan), image.files, plan, peerLinks)
      } catch (err) {
        // Only a resume from a seed is retried; its own errors (quota, addresses) would come back.
        if (!plan.from || snap || !(err instanceof ApiError) || err.code !== 'vm_boot_failed') throw err
        await deps.seeds.failed(image.id, shape, reason(err))
        // A broken seed costs speed, never the create: the same VM again, booted cold.
        created = await provision(await insert({}), image.files, {}, peerLinks)
      }
      if (!snap) {
        if (created.provisionMode === 'snapshot') deps.seeds.used(image.id, shape)
        else deps.seeds.coldBooted(image.id, shape)
      }
      return created
    },

    /** A VM the manager keeps for itself (image seed, warm pool): no quota, not listed. */
    async createInternal(purpose: 'seed' | 'pool', input: Pick<CreateVmInput, 'cpu' | 'memMb' | 'imageId'>): Promise<VmRecord> {
      const image = await images.resolveForBoot(input.imageId)
      const full: CreateVmInput = { ...input, allowIps: [], outboundInternet: false }
      const { plan, source } = purpose === 'seed' ? { plan: {}, source: undefined } : await planFor(full, image.files, image.id, undefined)
      const vm = newRecord(crypto.randomUUID(), full, image.id, { purpose, secretEnv: null, sourceSnapshotId: null, memorySnapshotId: plan.from?.memoryInFile ? source!.id : null })
      if ((await repo.insertWithinQuota(vm, { maxVms: config.maxVms })) !== 'ok') throw Errors.quotaExceeded('maxVms', config.maxVms)
      const created = await provision(vm, image.files, plan)
      if (plan.from) deps.seeds.used(image.id, input)
      return created
    },

    /** Hands a warm VM to the caller: it becomes a user VM with the caller's policy and secrets. */
    async adopt(id: string, input: CreateVmInput): Promise<VmRecord | undefined> {
      return lock.run(id, async () => {
        const vm = await repo.get(id)
        if (!vm || vm.purpose !== 'pool' || vm.state !== 'RUNNING') return undefined
        const secretEnv = parseSecretEnv(input.secretEnv ?? [])
        const sealed = Object.keys(secretEnv).length ? deps.secrets.seal(id, secretEnv) : null
        const policy = { allowIps: input.allowIps, allowDomains: input.allowDomains ?? [], outboundInternet: input.outboundInternet ?? false }
        // Policy first: the VM is never the caller's while its rules are still the pool's.
        const updated = await network.update(vm, policy)
        const patch = { purpose: 'user' as const, secretEnv: sealed, provisionMode: 'pool' as const }
        if ((await repo.adoptWithinQuota(id, patch, { maxVms: config.maxVms })) !== 'ok') {
          await network.update(updated, { allowIps: [], allowDomains: [], outboundInternet: false })
          throw Errors.quotaExceeded('maxVms', config.maxVms)
        }
        return { ...updated, ...patch }
      })
    },

  }
}
export type VmCreation = ReturnType<typeof createVmCreation>
