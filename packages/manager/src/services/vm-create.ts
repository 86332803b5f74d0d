// A user's create (POST /v1/vms): checking the request, then asking where the new VM comes
// from — a warm pool VM of this shape, the requested snapshot (resumed when its shape
// matches, else its disk cold-booted, as the original did), the image seed of this shape, or
// a cold boot — and provisioning it (vm-provision.ts). The pool and the seeds are sources
// this module asks; neither is an entry point.
import crypto from 'node:crypto'
import type { Config } from '../config.ts'
import { Errors, ApiError, recode } from '../errors.ts'
import type { Paths } from '../runtime/storage/paths.ts'
import type { OnExpire, VmRecord } from '../store/vms-repo.ts'
import { validateLabels } from './vm-labels.ts'
import { resolveTtl, type TtlConfig } from './vm-ttl.ts'
import type { SnapshotRecord } from '../store/snapshots-repo.ts'
import type { SeedShape } from '../store/image-seeds-repo.ts'
import type { BootFiles } from '../runtime/vmm/driver.ts'
import type { ImageService } from './images.ts'
import type { SnapshotService } from './snapshots.ts'
import type { NetworkService } from './network.ts'
import type { PeerLinkInput, PeerLinks } from './peers/peer-links.ts'
import { parseSecretEnv, type SecretBox } from './secret-env.ts'
import type { ProvisionPlan, Provisioner } from './vm-provision.ts'
import type { MetricsReport } from './metrics/report.ts'

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
  /** A snapshot holding secrets (containsSecrets) may be used without secretEnv of the same names. */
  acceptSnapshotSecrets?: boolean
  /** Who asks (services/accounts/actor.ts actorLabel); recorded on the VM. */
  createdBy?: string
  /** Seconds the VM lives once running (vm-ttl.ts); null: none; absent: DEFAULT_TTL_SECONDS. */
  ttlSeconds?: number | null
  onExpire?: OnExpire
  labels?: Record<string, string>
}

/** A create request once checked: the TTL resolved, the labels validated. */
export type SettledCreate = CreateVmInput & { ttlSeconds: number | null; onExpire: OnExpire; labels: Record<string, string> }

/** What creating a VM asks of the image seeds (image-seeds.ts). */
export interface SeedSource {
  /** How to resume a VM of this shape from the image's seed, if one is ready and sound. */
  restorePlan(imageId: string, shape: SeedShape, files: BootFiles): Promise<ProvisionPlan | undefined>
  used(imageId: string, shape: SeedShape): void
  coldBooted(imageId: string, shape: SeedShape): void
  failed(imageId: string, shape: SeedShape, reason: string): Promise<void>
}

/** The egress policy a create request asks for, with the defaults filled in. */
export const requestedPolicy = (input: CreateVmInput) => ({ allowIps: input.allowIps, allowDomains: input.allowDomains ?? [], outboundInternet: input.outboundInternet ?? false })

/** What creating a VM asks of the warm pool (warm-pool.ts). */
export interface WarmSource {
  /** A warm VM handed to the caller with its policy and secrets (parsed already) applied, when one fits. */
  take(input: SettledCreate, secretEnv: Record<string, string>): Promise<VmRecord | undefined>
  /** Removes a warm VM so that a user's VM refused for memory fits; false when there was none. */
  giveWay(): Promise<boolean>
}

export function createVmCreation(deps: {
  config: Pick<Config, 'maxCpu' | 'maxMemMb'> & TtlConfig
  paths: Paths
  images: ImageService
  network: NetworkService
  secrets: SecretBox
  snapshots: SnapshotService
  seeds: SeedSource
  pool: WarmSource
  peers: PeerLinks
  provisioner: Provisioner
  metrics: MetricsReport
}) {
  const { config, paths, images, network, snapshots } = deps
  const reason = (err: unknown) => (err as Error).message

  function validateResources(input: { cpu: number; memMb: number; diskSizeMb?: number }): void {
    if (!Number.isInteger(input.cpu) || input.cpu <= 0 || input.cpu > config.maxCpu) throw Errors.invalidCpu(config.maxCpu)
    if (!Number.isInteger(input.memMb) || input.memMb < 128 || input.memMb > config.maxMemMb) throw Errors.invalidMemMb(config.maxMemMb)
    // Checked with the original's messages, though the overlay size is OVERLAY_SIZE_BYTES (as there).
    if (input.diskSizeMb !== undefined && !(Number.isFinite(input.diskSizeMb) && input.diskSizeMb > 0)) throw Errors.invalidDiskSize('Invalid diskSizeMb')
    if (input.diskSizeMb !== undefined && input.diskSizeMb > 1_048_576) throw Errors.invalidDiskSize('diskSizeMb too large')
  }

  /** Everything about a create request that can be checked without touching the host. */
  function validateCreate(input: CreateVmInput): Record<string, string> {
    validateResources(input)
    resolveTtl(input.ttlSeconds, config)
    validateLabels(input.labels ?? {})
    network.validate(requestedPolicy(input))
    const secretEnv = parseSecretEnv(input.secretEnv ?? [])
    if (Object.keys(secretEnv).length) deps.secrets.requireKey()
    return secretEnv
  }

  /** The original's sentence for a create from a snapshot that does not exist. */
  const userSnapshot = (id: string): Promise<SnapshotRecord> => recode(snapshots.get(id), 'snapshot_not_found', Errors.userSnapshotNotFound)

  /**
   * A snapshot's memory holds the secret values of the VM it was taken of (process environments):
   * a VM created from it can read them. Allowed when the caller supplies secretEnv of the same
   * names (the owner re-supplying them, as the original's docs describe) or accepts it outright.
   */
  function checkSnapshotSecrets(snap: SnapshotRecord, secretEnv: Record<string, string>, accept: boolean): void {
    if (snap.secretNames.length === 0 || accept) return
    const given = Object.keys(secretEnv)
    const same = given.length === snap.secretNames.length && snap.secretNames.every((n) => n in secretEnv)
    if (!same) throw Errors.snapshotContainsSecrets(snap.id, snap.secretNames.length)
  }

  /** A user snapshot: resumed when cpu/memMb match, else its disk cold-booted (as the original did). */
  async function snapshotPlan(input: CreateVmInput, snap: SnapshotRecord, files: BootFiles): Promise<ProvisionPlan> {
    const resume = snap.cpu === input.cpu && snap.memMb === input.memMb
    const point = await snapshots.restorePoint(snap, files)
    return { disk: paths.snapshotOverlay(snap.id), ...(resume ? { from: point, memorySnapshotId: snap.id } : {}) }
  }

  /** The request with its TTL, expiry action and labels decided (defaults, caps, validation). */
  const settled = (asked: CreateVmInput): SettledCreate => ({ ...asked, ttlSeconds: resolveTtl(asked.ttlSeconds, config), onExpire: asked.onExpire ?? 'delete', labels: validateLabels(asked.labels ?? {}) })

  /** The VM of a checked request: from `snap` when given, else from the image's seed or a cold boot. */
  async function provisionVm(input: SettledCreate, secretEnv: Record<string, string>, snap: SnapshotRecord | undefined): Promise<VmRecord> {
    const image = await images.resolveForBoot(snap?.imageId ?? input.imageId)
    // Providers are inspected before anything of this VM exists: a bad link leaves nothing behind.
    const peerLinks = await deps.peers.prepare(input.peerLinks ?? [])
    const shape = { cpu: input.cpu, memMb: input.memMb }
    const plan = snap ? await snapshotPlan(input, snap, image.files) : ((await deps.seeds.restorePlan(image.id, shape, image.files)) ?? {})
    const id = crypto.randomUUID()
    const vm = {
      ...shape,
      imageId: image.id,
      purpose: 'user' as const,
      ...requestedPolicy(input),
      secretEnv: deps.secrets.stored(id, secretEnv),
      sourceSnapshotId: snap?.id ?? null,
      // Also when the shape differs and the disk is booted cold: what processes wrote there may hold them too.
      inheritedSecretNames: snap?.secretNames ?? [],
      createdBy: input.createdBy ?? null,
      // Neither is inherited from a snapshot's VM: a clone is a new VM with the request's own.
      labels: input.labels,
      ttlSeconds: input.ttlSeconds,
      onExpire: input.onExpire,
    }
    let created: VmRecord
    try {
      created = await deps.provisioner.create(vm, image.files, plan, { id, peerLinks })
    } catch (err) {
      // Only a resume from a seed is retried; its own errors (quota, addresses) would come back.
      if (!plan.from || snap || !(err instanceof ApiError) || err.code !== 'vm_boot_failed') throw err
      await deps.seeds.failed(image.id, shape, reason(err))
      // A broken seed costs speed, never the create: the same VM again, booted cold.
      created = await deps.provisioner.create(vm, image.files, {}, { id, peerLinks })
    }
    if (!snap) {
      if (created.provisionMode === 'snapshot') deps.seeds.used(image.id, shape)
      else deps.seeds.coldBooted(image.id, shape)
    }
    return created
  }

  /** Warm VMs are the manager's spare: a user's VM refused for memory gets their room. */
  async function roomyProvision(input: SettledCreate, secretEnv: Record<string, string>, snap: SnapshotRecord | undefined): Promise<VmRecord> {
    for (;;) {
      try {
        return await provisionVm(input, secretEnv, snap)
      } catch (err) {
        if (!(err instanceof ApiError) || err.code !== 'host_memory_exhausted' || !(await deps.pool.giveWay())) throw err
      }
    }
  }

  /** A create that returns a VM is timed by how it got it (rds_vm_create_seconds). */
  function measured(vm: VmRecord, started: number): VmRecord {
    if (vm.provisionMode) deps.metrics.vmCreated(vm.provisionMode, (performance.now() - started) / 1000)
    return vm
  }

  return {
    async create(asked: CreateVmInput): Promise<VmRecord> {
      const started = performance.now()
      const secretEnv = validateCreate(asked)
      const input = settled(asked)
      const warm = await deps.pool.take(input, secretEnv)
      if (warm) return measured(warm, started)
      const snapshotId = input.snapshotId ?? input.userOverlaySnapshotId
      const snap = snapshotId !== undefined ? await userSnapshot(snapshotId) : undefined
      if (snap && snap.kind !== 'user') throw Errors.snapshotKindNotUsable()
      if (snap && input.imageId !== undefined && input.imageId !== snap.imageId) throw Errors.snapshotImageMismatch(snap.imageId, input.imageId)
      if (snap) checkSnapshotSecrets(snap, secretEnv, input.acceptSnapshotSecrets === true)
      return measured(await roomyProvision(input, secretEnv, snap), started)
    },

    /**
     * A VM resumed from a template's snapshot (templates.ts found it): the template's shape and
     * image, the request's policy and secrets. Never from the warm pool: a pool VM has not run
     * the template's setup.
     */
    async createFromTemplate(asked: CreateVmInput, snap: SnapshotRecord): Promise<VmRecord> {
      const started = performance.now()
      const secretEnv = validateCreate(asked)
      const input = settled(asked)
      checkSnapshotSecrets(snap, secretEnv, input.acceptSnapshotSecrets === true)
      return measured(await roomyProvision({ ...input, cpu: snap.cpu, memMb: snap.memMb, imageId: snap.imageId }, secretEnv, snap), started)
    },
  }
}
export type VmCreation = ReturnType<typeof createVmCreation>
