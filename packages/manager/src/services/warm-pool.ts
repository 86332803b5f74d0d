// The warm pool: VMs booted ahead of demand (ENABLE_WARM_POOL, WARM_POOL_TARGET,
// WARM_POOL_MAX_VMS), a source a user's create asks first (vm-create.ts). A create of the
// pool's shape takes one, has the caller's network policy and secrets applied, and returns
// it; the pool refills in the background. Pool VMs are ordinary VM rows with purpose "pool",
// so a manager restart re-attaches or removes them like any other VM and never counts a stale one.
// On by default, so pool VMs give way to users: the pool fills only while the guest memory budget
// keeps room for a user's VM of its shape beside it, and a user's create refused for memory takes
// the room of a warm VM (giveWay). They never count against a user's quota (vms-repo.ts).
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.ts'
import type { VmRecord, VmsRepo } from '../store/vms-repo.ts'
import type { ImageService } from './images.ts'
import type { KeyedLock } from './locks.ts'
import type { NetworkService } from './network.ts'
import type { SecretBox } from './secret-env.ts'
import { requestedPolicy, type CreateVmInput, type SeedSource, type SettledCreate, type WarmSource } from './vm-create.ts'
import type { Provisioner } from './vm-provision.ts'
import type { MemoryBudget } from '../runtime/supervisor/memory-budget.ts'
import { quotaError, quotaLimits } from './vm-quota.ts'

/** After a failed refill, wait before trying again (a broken image must not spin the host). */
const RETRY_MS = 30_000

export function createWarmPool(deps: {
  config: Pick<Config, 'enableWarmPool' | 'warmPoolTarget' | 'warmPoolMaxVms' | 'maxVms' | 'quotaMaxVmsPerKey' | 'seedCpu' | 'seedMemMb'>
  provisioner: Provisioner
  seeds: SeedSource
  vmsRepo: VmsRepo
  images: ImageService
  network: NetworkService
  secrets: SecretBox
  locks: KeyedLock
  /** The guest memory budget every VM is admitted against (supervisor/memory-budget.ts). */
  memory: () => Pick<MemoryBudget, 'budgetMb' | 'usedMb'> & { vmmOverheadMb: number }
  log: FastifyBaseLogger
}) {
  const { config, provisioner, vmsRepo, log } = deps
  const target = config.enableWarmPool ? Math.min(config.warmPoolTarget, config.warmPoolMaxVms) : 0
  let refilling: Promise<void> | undefined
  let retry: NodeJS.Timeout | undefined
  let closed = false

  function fits(input: CreateVmInput): boolean {
    // A consumer's links are checked and written while it is created: never a warm VM.
    return target > 0 && !input.peerLinks?.length && input.snapshotId === undefined && input.userOverlaySnapshotId === undefined && input.cpu === config.seedCpu && input.memMb === config.seedMemMb
  }

  /** A pool VM resumes from the image seed of its shape when there is one. */
  async function createOne(imageId: string): Promise<VmRecord> {
    const shape = { cpu: config.seedCpu, memMb: config.seedMemMb }
    const { files } = await deps.images.resolveForBoot(imageId)
    const plan = (await deps.seeds.restorePlan(imageId, shape, files)) ?? {}
    const vm = await provisioner.create({ ...shape, imageId, purpose: 'pool' }, files, plan)
    if (plan.from) deps.seeds.used(imageId, shape)
    return vm
  }

  /** Hands a warm VM to the caller: it becomes a user VM with the caller's policy and secrets. */
  async function adopt(id: string, input: SettledCreate, secretEnv: Record<string, string>): Promise<VmRecord | undefined> {
    return deps.locks.run(id, async () => {
      const vm = await vmsRepo.get(id)
      if (!vm || vm.purpose !== 'pool' || vm.state !== 'RUNNING') return undefined
      // Policy first: the VM is never the caller's while its rules are still the pool's.
      const updated = await deps.network.update(vm, requestedPolicy(input))
      const patch = { purpose: 'user' as const, secretEnv: deps.secrets.stored(id, secretEnv), provisionMode: 'pool' as const, createdBy: input.createdBy ?? null, ttlSeconds: input.ttlSeconds, onExpire: input.onExpire }
      const refused = quotaError(await vmsRepo.adoptWithinQuota(id, patch, input.labels, quotaLimits(config, patch.createdBy)), config)
      if (refused) {
        await deps.network.update(updated, { allowIps: [], allowDomains: [], outboundInternet: false })
        throw refused
      }
      return { ...updated, ...patch, labels: input.labels }
    })
  }

  /** Room for one more warm VM and, beside it, a user's VM of the same shape. */
  const memoryAllows = () => {
    const { budgetMb, usedMb, vmmOverheadMb } = deps.memory()
    return budgetMb - usedMb >= 2 * (config.seedMemMb + vmmOverheadMb)
  }

  /** Resolves false when the pool stopped short of its target for want of memory. */
  async function fillOnce(): Promise<boolean> {
    while (!closed) {
      // VMs of an image that is no longer the default would never be handed out.
      const imageId = (await deps.images.resolveForBoot(undefined)).id
      for (const vm of await vmsRepo.listByPurpose('pool')) {
        if (vm.imageId !== imageId || vm.state === 'ERROR') await provisioner.destroyById(vm.id)
      }
      const pool = await vmsRepo.listByPurpose('pool')
      if (pool.length >= target) return true
      if (!memoryAllows()) return false
      // The pool never pushes the host past MAX_VMS (the quota counts all VMs for a pool VM).
      const vm = await createOne(imageId)
      log.info({ vmId: vm.id, mode: vm.provisionMode, bootMs: vm.bootMs }, 'warm pool VM ready')
    }
    return true
  }

  function retryLater(): void {
    clearTimeout(retry)
    retry = setTimeout(() => void refill(), RETRY_MS)
    retry.unref()
  }

  function refill(): Promise<void> {
    if (target === 0 || closed) return Promise.resolve()
    refilling ??= fillOnce()
      .then((full) => {
        // Deleted VMs free the budget without telling the pool: look again later.
        if (!full && !closed) retryLater()
      })
      .catch((err: Error) => {
        log.warn({ err: err.message }, `warm pool refill failed; retrying in ${RETRY_MS / 1000} s`)
        retryLater()
      })
      .finally(() => {
        refilling = undefined
      })
    return refilling
  }

  const source: WarmSource = {
    /** A warm VM for this (already validated) create, when one fits; the pool refills behind it. */
    async take(input, secretEnv) {
      if (!fits(input)) return undefined
      const imageId = (await deps.images.resolveForBoot(input.imageId)).id
      for (const vm of await vmsRepo.listByPurpose('pool')) {
        if (vm.state !== 'RUNNING' || vm.imageId !== imageId) continue
        const adopted = await adopt(vm.id, input, secretEnv)
        if (!adopted) continue
        void refill()
        return adopted
      }
      return undefined
    },

    /**
     * A user's create was refused for memory: one warm VM is removed to make room (true), unless
     * none is idle. The pool refills only once memory allows again.
     */
    async giveWay(): Promise<boolean> {
      for (const vm of await vmsRepo.listByPurpose('pool')) {
        const removed = await deps.locks.run(vm.id, async () => {
          // Adopted meanwhile: it is the caller's now.
          const current = await vmsRepo.get(vm.id)
          if (current?.purpose !== 'pool') return false
          await provisioner.destroy(current)
          return true
        })
        if (removed) {
          log.info({ vmId: vm.id }, 'warm pool VM removed to make room for a user\'s VM')
          return true
        }
      }
      return false
    },
  }

  return {
    ...source,
    target,

    /** What GET /v1/warm-pool shows. */
    async status(): Promise<{ enabled: boolean; target: number; ready: number; starting: number; refilling: boolean }> {
      const pool = await vmsRepo.listByPurpose('pool')
      const ready = pool.filter((v) => v.state === 'RUNNING').length
      return { enabled: target > 0, target, ready, starting: pool.length - ready, refilling: refilling !== undefined }
    },

    /** Starts filling; resolves when the pool is full (or a refill failed). */
    start: refill,

    async close(): Promise<void> {
      closed = true
      clearTimeout(retry)
      await refilling
    },
  }
}
export type WarmPool = ReturnType<typeof createWarmPool>
