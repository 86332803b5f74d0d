// The warm pool: VMs booted ahead of demand (ENABLE_WARM_POOL, WARM_POOL_TARGET,
// WARM_POOL_MAX_VMS). A create of the pool's shape takes one, has the caller's network policy
// and secrets applied, and returns it; the pool refills in the background. Pool VMs are
// ordinary VM rows with purpose "pool", so a manager restart re-attaches or removes them like
// any other VM and never counts a stale one.
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.ts'
import type { VmRecord, VmsRepo } from '../store/vms-repo.ts'
import type { ImageService } from './images.ts'
import type { CreateVmInput, VmCreation } from './vm-create.ts'
import type { VmService } from './vms.ts'

/** After a failed refill, wait before trying again (a broken image must not spin the host). */
const RETRY_MS = 30_000

export function createWarmPool(deps: {
  config: Pick<Config, 'enableWarmPool' | 'warmPoolTarget' | 'warmPoolMaxVms' | 'maxVms' | 'seedCpu' | 'seedMemMb'>
  creation: VmCreation
  vms: VmService
  vmsRepo: VmsRepo
  images: ImageService
  log: FastifyBaseLogger
}) {
  const { config, creation, vms, vmsRepo, log } = deps
  const target = config.enableWarmPool ? Math.min(config.warmPoolTarget, config.warmPoolMaxVms) : 0
  let refilling: Promise<void> | undefined
  let retry: NodeJS.Timeout | undefined
  let closed = false

  function fits(input: CreateVmInput): boolean {
    // A consumer's links are checked and written while it is created: never a warm VM.
    return target > 0 && !input.peerLinks?.length && input.snapshotId === undefined && input.userOverlaySnapshotId === undefined && input.cpu === config.seedCpu && input.memMb === config.seedMemMb
  }

  async function fillOnce(): Promise<void> {
    while (!closed) {
      // VMs of an image that is no longer the default would never be handed out.
      const imageId = (await deps.images.resolveForBoot(undefined)).id
      for (const vm of await vmsRepo.listByPurpose('pool')) {
        if (vm.imageId !== imageId || vm.state === 'ERROR') await vms.removeInternal(vm.id)
      }
      const pool = await vmsRepo.listByPurpose('pool')
      if (pool.length >= target) return
      // The pool never pushes the host past MAX_VMS (createInternal checks all VMs for a pool VM).
      const vm = await creation.createInternal('pool', { cpu: config.seedCpu, memMb: config.seedMemMb })
      log.info({ vmId: vm.id, mode: vm.provisionMode, bootMs: vm.bootMs }, 'warm pool VM ready')
    }
  }

  function refill(): Promise<void> {
    if (target === 0 || closed) return Promise.resolve()
    refilling ??= fillOnce()
      .catch((err: Error) => {
        log.warn({ err: err.message }, `warm pool refill failed; retrying in ${RETRY_MS / 1000} s`)
        clearTimeout(retry)
        retry = setTimeout(() => void refill(), RETRY_MS)
        retry.unref()
      })
      .finally(() => {
        refilling = undefined
      })
    return refilling
  }

  return {
    target,

    /** POST /v1/vms: a warm VM when one fits, otherwise a new one. */
    async create(input: CreateVmInput): Promise<VmRecord> {
      if (fits(input)) {
        creation.validateCreate(input)
        const imageId = (await deps.images.resolveForBoot(input.imageId)).id
        for (const vm of await vmsRepo.listByPurpose('pool')) {
          if (vm.state !== 'RUNNING' || vm.imageId !== imageId) continue
          const adopted = await creation.adopt(vm.id, input)
          if (!adopted) continue
          void refill()
          return adopted
        }
      }
      return creation.create(input)
    },

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
