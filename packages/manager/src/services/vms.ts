// The VM verbs of the product: create, list, get, start, stop, remove, and the startup
// reconciliation. Each lifecycle verb runs under the VM's lock; exec & files (vm-exec.ts)
// do not take it, so requests to one VM never wait on another VM's lifecycle.
import crypto from 'node:crypto'
import fsp from 'node:fs/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.ts'
import { Errors, ApiError } from '../errors.ts'
import { Cleanup } from '../runtime/cleanup.ts'
import { createOverlay } from '../runtime/storage/overlay.ts'
import type { Paths } from '../runtime/storage/paths.ts'
import type { VmmDriver } from '../runtime/vmm/driver.ts'
import type { ExecLogsRepo } from '../store/exec-logs-repo.ts'
import type { VmRecord, VmsRepo } from '../store/vms-repo.ts'
import type { ImageService } from './images.ts'
import { KeyedLock } from './locks.ts'
import type { Machines } from './machines.ts'
import type { NetworkPolicyInput, NetworkService } from './network.ts'
import type { PeerLinkInput, PeerLinks } from './peers/peer-links.ts'
import { parseSecretEnv, type SecretBox } from './secret-env.ts'
import { assertState, LIVE_STATES } from './vm-states.ts'

export interface CreateVmInput {
  cpu: number
  memMb: number
  allowIps: string[]
  allowDomains?: string[]
  secretEnv?: string[]
  outboundInternet?: boolean
  imageId?: string
  peerLinks?: PeerLinkInput[]
}

export function createVmService(deps: {
  config: Config
  paths: Paths
  repo: VmsRepo
  execLogs: ExecLogsRepo
  images: ImageService
  machines: Machines
  network: NetworkService
  secrets: SecretBox
  driver: VmmDriver
  /** A getter: linking runs code in providers through vm-exec, which itself looks VMs up here. */
  peers: () => PeerLinks
  log: FastifyBaseLogger
}) {
  const { config, paths, repo, images, machines, network, log } = deps
  const lock = new KeyedLock()

  async function mustGet(id: string): Promise<VmRecord> {
    // The original's guard against clients that interpolate a missing id into the URL.
    const t = id.trim().toLowerCase()
    if (t === '' || t === 'undefined' || t === 'null') throw Errors.invalidVmId()
    const vm = await repo.get(id)
    if (!vm) throw Errors.vmNotFound(id)
    return vm
  }

  function validateResources(input: { cpu: number; memMb: number }): void {
    if (!Number.isInteger(input.cpu) || input.cpu <= 0 || input.cpu > config.maxCpu) throw Errors.invalidCpu(config.maxCpu)
    if (!Number.isInteger(input.memMb) || input.memMb < 128 || input.memMb > config.maxMemMb) throw Errors.invalidMemMb(config.maxMemMb)
  }

  const reason = (err: unknown) => (err instanceof ApiError ? err.message : (err as Error).message)

  return {
    get: mustGet,
    list: () => repo.list(),

    async create(input: CreateVmInput): Promise<VmRecord> {
      validateResources(input)
      network.validate({ allowIps: input.allowIps, allowDomains: input.allowDomains ?? [], outboundInternet: input.outboundInternet ?? false })
      const secretEnv = parseSecretEnv(input.secretEnv ?? [])
      if (Object.keys(secretEnv).length) deps.secrets.requireKey()
      const image = await images.resolveForBoot(input.imageId)
      // Providers are inspected before anything of this VM exists: a bad link leaves nothing behind.
      const peerLinks = await deps.peers().prepare(input.peerLinks ?? [])
      const now = new Date().toISOString()
      const id = crypto.randomUUID()
      const vm: VmRecord = {
        id,
        state: 'CREATED',
        cpu: input.cpu,
        memMb: input.memMb,
        imageId: image.id,
        guestIp: null,
        allowIps: input.allowIps,
        allowDomains: input.allowDomains ?? [],
        secretEnv: Object.keys(secretEnv).length ? deps.secrets.seal(id, secretEnv) : null,
        outboundInternet: input.outboundInternet ?? false,
        provisionMode: null,
        createdAt: now,
        startedAt: null,
        bootMs: null,
        lastError: null,
        vmmPid: null,
        vmmStartTime: null,
      }
      if ((await repo.insertWithinQuota(vm, { maxVms: config.maxVms })) !== 'ok') throw Errors.quotaExceeded('maxVms', config.maxVms)
      return lock.run(vm.id, async () => {
        const undo = new Cleanup()
        undo.add('database row', () => repo.remove(vm.id))
        try {
          vm.guestIp = await network.allocate(vm.id)
          undo.add('TAP and rules', () => network.detach(vm))
          const net = await network.attach(vm)
          await fsp.mkdir(paths.vmDir(vm.id), { recursive: true, mode: 0o700 })
          undo.add('VM directory', () => fsp.rm(paths.vmDir(vm.id), { recursive: true, force: true }))
          await createOverlay(paths.overlay(vm.id), config.overlaySizeBytes)
          undo.add('VMM process', () => machines.kill(vm.id))
          const { bootMs } = await machines.boot(vm, image.files, net)
          if (peerLinks.length) {
            undo.add('peer links', () => deps.peers().forget(vm.id))
            await deps.peers().attach(vm.id, peerLinks)
          }
          const patch = { state: 'RUNNING' as const, provisionMode: 'boot' as const, startedAt: new Date().toISOString(), bootMs }
          await repo.update(vm.id, patch)
          undo.commit()
          log.info({ vmId: vm.id, bootMs }, 'VM created')
          return { ...vm, ...patch, vmmPid: machines.get(vm.id)?.handle.pid ?? null }
        } catch (err) {
          const leftovers = await undo.run()
          log.error({ vmId: vm.id, err: reason(err), leftovers }, 'VM create failed; rolled back')
          if (err instanceof ApiError) throw err
          throw Errors.bootFailed(reason(err))
        }
      })
    },

    async start(id: string): Promise<void> {
      await lock.run(id, async () => {
        const vm = await mustGet(id)
        assertState(vm, 'start')
        const image = await images.resolveForBoot(vm.imageId)
        // An ERROR VM may still have a VMM whose agent stopped answering: never run two on one disk.
        await machines.kill(id)
        try {
          // VMs created before networking existed get their address on their next start.
          if (!vm.guestIp) vm.guestIp = await network.allocate(id)
          const net = await network.attach(vm)
          const { bootMs } = await machines.boot(vm, image.files, net)
          await repo.update(id, { state: 'RUNNING', startedAt: new Date().toISOString(), bootMs, lastError: null })
        } catch (err) {
          // The VM keeps its disk: a failed start is an ERROR the user can retry or delete.
          await repo.update(id, { state: 'ERROR', lastError: `start failed: ${reason(err)}`, vmmPid: null, vmmStartTime: null })
          throw Errors.bootFailed(reason(err))
        }
      })
    },

    async stop(id: string): Promise<void> {
      await lock.run(id, async () => {
        const vm = await mustGet(id)
        assertState(vm, 'stop')
        await repo.update(id, { state: 'STOPPING' })
        await machines.stop(id, config.stopTimeoutMs)
        await repo.update(id, { state: 'STOPPED', vmmPid: null, vmmStartTime: null })
      })
    },

    /** Removes everything of the VM: process, disks, sockets, directory, logs and its row. */
    async remove(id: string): Promise<void> {
      await lock.run(id, async () => {
        const vm = await mustGet(id)
        await machines.kill(id)
        await network.detach(vm)
        await fsp.rm(paths.vmDir(id), { recursive: true, force: true })
        await deps.execLogs.removeForVm(id)
        await deps.peers().forget(id)
        await repo.remove(id)
      })
    },

    /**
     * Startup reconciliation: every VM ends up running and usable or cleanly stopped, and no
     * VMM process, socket or directory of this instance is left that no VM owns.
     */
    async reconcile(): Promise<{ reattached: string[]; stopped: string[]; removed: string[]; reaped: number[]; removedTaps: string[] }> {
      const out = { reattached: [] as string[], stopped: [] as string[], removed: [] as string[], reaped: [] as number[] }
      for (const vm of await repo.listInStates([...LIVE_STATES, 'CREATED'])) {
        const image = await images.resolveForBoot(vm.imageId).catch(() => undefined)
        if (vm.state === 'RUNNING' && image && (await machines.reattach(vm, image.files, network.bootNet(vm)))) {
          out.reattached.push(vm.id)
          continue
        }
        if (vm.provisionMode === null) {
          // A create that never finished: undo it completely.
          await fsp.rm(paths.vmDir(vm.id), { recursive: true, force: true })
          await repo.remove(vm.id)
          out.removed.push(vm.id)
        } else {
          await machines.removeRuntimeFiles(vm.id)
          const lastError = vm.state === 'RUNNING' ? 'VM was not running after a manager restart' : `manager restarted while the VM was ${vm.state}`
          await repo.update(vm.id, { state: 'STOPPED', vmmPid: null, vmmStartTime: null, lastError })
          out.stopped.push(vm.id)
        }
      }
      const owned = new Set(machines.ids())
      for (const p of deps.driver.findOwnProcesses()) {
        if (owned.has(p.vmId)) continue
        try {
          process.kill(p.pid, 'SIGKILL')
          out.reaped.push(p.pid)
        } catch {
          // gone meanwhile
        }
      }
      const remaining = await repo.list()
      const known = new Set(remaining.map((v) => v.id))
      for (const dir of await fsp.readdir(paths.vmsRoot).catch(() => [] as string[])) {
        if (!known.has(dir)) await fsp.rm(`${paths.vmsRoot}/${dir}`, { recursive: true, force: true })
      }
      // TAPs and rules for exactly the VMs that remain; anything else in the namespace goes.
      const { removedTaps } = await network.start(remaining)
      return { ...out, removedTaps }
    },

    network: async (id: string) => network.view(await mustGet(id)),

    /** Applies a new egress policy at once, whatever the VM's state (rules live while the VM exists). */
    async updateNetwork(id: string, input: NetworkPolicyInput) {
      return lock.run(id, async () => network.view(await network.update(await mustGet(id), input)))
    },
  }
}
export type VmService = ReturnType<typeof createVmService>
