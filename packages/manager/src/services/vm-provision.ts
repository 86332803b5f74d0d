// Provisioning and destroying VMs, whoever asked: a user create (vm-create.ts), the warm pool
// and the image seeds. A VM is inserted within the quota, then given its address, TAP, disk
// and a running VMM (booted or restored) with an undo stack, so a failure leaves no row,
// process, socket or file; destroy removes all of it again.
import crypto from 'node:crypto'
import fsp from 'node:fs/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.ts'
import { Errors, knownApiError } from '../errors.ts'
import { Cleanup } from '../runtime/cleanup.ts'
import { copySparse } from '../runtime/storage/copy.ts'
import { createOverlay } from '../runtime/storage/overlay.ts'
import type { Paths } from '../runtime/storage/paths.ts'
import type { MachineConfig, RestorePoint, Supervisor, VmNet } from '../runtime/supervisor/supervisor.ts'
import type { BootFiles } from '../runtime/vmm/driver.ts'
import type { OnExpire, VmPurpose, VmRecord, VmsRepo } from '../store/vms-repo.ts'
import type { ExecLogsRepo } from '../store/exec-logs-repo.ts'
import type { ImageService } from './images.ts'
import type { KeyedLock } from './locks.ts'
import type { NetworkService } from './network.ts'
import type { PeerLinks, PreparedLink } from './peers/peer-links.ts'
import type { Lifecycle } from './vm-lifecycle.ts'
import { quotaError, quotaLimits } from './vm-quota.ts'

/** How a new VM gets its disk and whether it resumes from memory. */
export interface ProvisionPlan {
  /** Overlay to copy (a snapshot's); a fresh empty overlay when absent. */
  disk?: string
  from?: RestorePoint
  /** The snapshot whose memory file a restored VM maps (its files must outlive the VM). */
  memorySnapshotId?: string
}

/** What the supervisor needs of a VM row to run it. */
export const machineOf = (vm: VmRecord, files: BootFiles, net: VmNet | undefined): MachineConfig => ({ id: vm.id, cpu: vm.cpu, memMb: vm.memMb, files, net, memorySnapshotId: vm.memorySnapshotId })

export interface NewVm {
  cpu: number
  memMb: number
  imageId: string
  purpose: VmPurpose
  allowIps?: string[]
  allowDomains?: string[]
  outboundInternet?: boolean
  /** Sealed secretEnv (secret-env.ts). */
  secretEnv?: string | null
  sourceSnapshotId?: string | null
  /** Secret names the source snapshot's memory held (vm-create.ts decided the caller may have them). */
  inheritedSecretNames?: string[]
  createdBy?: string | null
  labels?: Record<string, string>
  /** The clock starts when the create has finished (vms.ts), not at insert: a slow boot costs none of it. */
  ttlSeconds?: number | null
  onExpire?: OnExpire
}

export function createProvisioner(deps: {
  config: Pick<Config, 'maxVms' | 'quotaMaxVmsPerKey' | 'overlaySizeBytes'>
  paths: Paths
  repo: VmsRepo
  execLogs: ExecLogsRepo
  images: ImageService
  supervisor: Supervisor
  lifecycle: Lifecycle
  network: NetworkService
  peers: PeerLinks
  locks: KeyedLock
  log: FastifyBaseLogger
}) {
  const { config, paths, repo, supervisor, lifecycle, network, log } = deps
  const reason = (err: unknown) => (err as Error).message

  /** The row of a new VM, within the quota (user VMs count the caller's; the manager's own count all). */
  async function insert(id: string, v: NewVm, plan: ProvisionPlan): Promise<VmRecord> {
    const vm: VmRecord = {
      id,
      state: 'CREATED',
      cpu: v.cpu,
      memMb: v.memMb,
      imageId: v.imageId,
      guestIp: null,
      allowIps: v.allowIps ?? [],
      allowDomains: v.allowDomains ?? [],
      outboundInternet: v.outboundInternet ?? false,
      provisionMode: null,
      createdAt: new Date().toISOString(),
      startedAt: null,
      bootMs: null,
      lastError: null,
      vmmPid: null,
      vmmStartTime: null,
      purpose: v.purpose,
      secretEnv: v.secretEnv ?? null,
      sourceSnapshotId: v.sourceSnapshotId ?? null,
      inheritedSecretNames: v.inheritedSecretNames ?? [],
      createdBy: v.createdBy ?? null,
      expiresAt: null,
      ttlSeconds: v.ttlSeconds ?? null,
      onExpire: v.onExpire ?? 'delete',
      labels: v.labels ?? {},
      // Set before the VMM maps the file, so the snapshot cannot be deleted under the resume.
      memorySnapshotId: plan.from?.memoryInFile ? (plan.memorySnapshotId ?? null) : null,
    }
    const refused = quotaError(await repo.insertWithinQuota(vm, vm.purpose === 'user' ? quotaLimits(config, vm.createdBy) : { maxVms: config.maxVms }), config)
    if (refused) throw refused
    return vm
  }

  /**
   * Gives an inserted VM its address, TAP, disk and a running VMM (booted or restored). On
   * failure everything it acquired is released, the row included.
   */
  async function provision(vm: VmRecord, files: BootFiles, plan: ProvisionPlan, peerLinks: PreparedLink[]): Promise<VmRecord> {
    return deps.locks.run(vm.id, async () => {
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
        undo.add('VMM process', () => supervisor.kill(vm.id))
        const machine = machineOf(vm, files, net)
        const started = lifecycle.startingOn(vm.id)
        const { bootMs } = plan.from ? await supervisor.restore(machine, plan.from, started) : await supervisor.boot(machine, started)
        stage('vmm')
        if (peerLinks.length) {
          undo.add('peer links', () => deps.peers.forget(vm.id))
          await deps.peers.attach(vm.id, peerLinks)
          stage('peers')
        }
        const patch = { provisionMode: plan.from ? ('snapshot' as const) : ('boot' as const), startedAt: new Date().toISOString(), bootMs }
        await lifecycle.transition(vm.id, 'RUNNING', patch)
        undo.commit()
        log.info({ vmId: vm.id, mode: patch.provisionMode, purpose: vm.purpose, ...stages, totalMs: Math.round(performance.now() - t0) }, 'VM created')
        return { ...vm, ...patch, state: 'RUNNING', vmmPid: supervisor.get(vm.id)?.handle.pid ?? null }
      } catch (err) {
        const leftovers = await undo.run()
        log.error({ vmId: vm.id, err: reason(err), leftovers }, 'VM create failed; rolled back')
        throw knownApiError(err) ?? Errors.bootFailed(reason(err))
      }
    })
  }

  /** Removes everything of the VM: process, TAP, disks, sockets, directory, logs, links and its row. Caller holds the lock. */
  async function destroy(vm: VmRecord): Promise<void> {
    await supervisor.kill(vm.id)
    await network.detach(vm)
    await fsp.rm(paths.vmDir(vm.id), { recursive: true, force: true })
    await deps.execLogs.removeForVm(vm.id)
    await deps.peers.forget(vm.id)
    await repo.remove(vm.id)
    if (vm.memorySnapshotId) lifecycle.memoryReleased(vm.memorySnapshotId)
  }

  return {
    /** A new VM, provisioned; `id` is given when something (a sealed secret) is bound to it already. */
    async create(v: NewVm, files: BootFiles, plan: ProvisionPlan, opts: { id?: string; peerLinks?: PreparedLink[] } = {}): Promise<VmRecord> {
      const vm = await insert(opts.id ?? crypto.randomUUID(), v, plan)
      return provision(vm, files, plan, opts.peerLinks ?? [])
    },
    destroy,
    /** The manager's own VMs (seed, pool) go by id, without the caller's lookup rules. */
    async destroyById(id: string): Promise<void> {
      await deps.locks.run(id, async () => {
        const vm = await repo.get(id)
        if (vm) await destroy(vm)
      })
    },
  }
}
export type Provisioner = ReturnType<typeof createProvisioner>
