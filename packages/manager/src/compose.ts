// The composition root: config in, wired services out. The only place that knows which
// implementation of each dependency is used.
import crypto from 'node:crypto'
import fs from 'node:fs'
import type { FastifyBaseLogger } from 'fastify'
import { addressPlanOf, ConfigError, type Config } from './config.ts'
import { openDatabase, type Db } from './store/db.ts'
import { createVmsRepo } from './store/vms-repo.ts'
import { createImagesRepo } from './store/images-repo.ts'
import { createExecLogsRepo } from './store/exec-logs-repo.ts'
import { createSnapshotsRepo } from './store/snapshots-repo.ts'
import { createImageSeedsRepo } from './store/image-seeds-repo.ts'
import { createPaths } from './runtime/storage/paths.ts'
import { ramDirAdvice, ramDirProblem } from './runtime/storage/ram-dir.ts'
import { createQemuDriver } from './runtime/vmm/qemu/driver.ts'
import { createImageService } from './services/images.ts'
import { createMachines } from './services/machines.ts'
import { createVmService } from './services/vms.ts'
import { createVmCreation } from './services/vm-create.ts'
import { createVmExecService } from './services/vm-exec.ts'
import { HostNetwork } from './runtime/network/host-network.ts'
import { createNetworkService } from './services/network.ts'
import { createSecretBox } from './services/secret-env.ts'
import { KeyedLock } from './services/locks.ts'
import { createSnapshotService } from './services/snapshots.ts'
import { createSeedService } from './services/image-seeds.ts'
import { createWarmPool } from './services/warm-pool.ts'
import { createPeerLinksRepo } from './store/peer-links-repo.ts'
import { createPeerLinks, type PeerLinks } from './services/peers/peer-links.ts'
import { createPeerCalls, type PeerCalls } from './services/peers/peer-calls.ts'

export interface AccelRef {
  value: 'kvm' | 'tcg'
}

export async function composeServices(config: Config, log: FastifyBaseLogger, accel: AccelRef = { value: 'tcg' }) {
  fs.mkdirSync(config.storageRoot, { recursive: true, mode: 0o700 })
  fs.mkdirSync(config.imagesDir, { recursive: true, mode: 0o755 })
  // One instance marker per storage root: two managers on one host never touch each other's VMs.
  const instance = crypto.createHash('sha256').update(config.storageRoot).digest('hex').slice(0, 10)
  const paths = createPaths(config.storageRoot, config.imagesDir, config.vmRamDir ?? `/dev/shm/rds-${instance}`)
  // The RAM directory on tmpfs is made by the first boot: tools that only compose services leave
  // nothing there. One that exists already must be ours (machines.ts checks again at each boot).
  const ramProblem = ramDirProblem(paths.ramRoot)
  if (ramProblem) throw new ConfigError(ramDirAdvice(ramProblem))
  for (const dir of [paths.vmsRoot, paths.snapshotsRoot]) fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  const { db, dialect } = await openDatabase({ databaseUrl: config.databaseUrl, sqlitePath: config.sqlitePath })
  const repos = { vms: createVmsRepo(db, dialect), images: createImagesRepo(db), execLogs: createExecLogsRepo(db, config.execLogMaxEntries), snapshots: createSnapshotsRepo(db), seeds: createImageSeedsRepo(db) }
  const plan = addressPlanOf(config)
  const hostNetwork = new HostNetwork(plan, instance, config.port, { excluded: config.egressExcluded, limits: config.vmConnectionLimits })
  const network = createNetworkService({ plan, host: hostNetwork, repo: repos.vms, dnsUpstreams: config.dnsUpstreams, maxAllowIps: config.maxAllowIps, excluded: config.egressExcluded, log })
  const driver = createQemuDriver({ qemuBin: config.qemuBin, accel: () => accel.value, instance,
    netnsPath: hostNetwork.netnsPath,
    kernelArgs: config.testGuestRoot ? ['rds.test_root=1'] : [],
  })
  const images = createImageService({ repo: repos.images, vms: repos.vms, snapshots: repos.snapshots, seeds: repos.seeds, template: { cpu: config.seedCpu, memMb: config.seedMemMb }, paths })
  // Peers close a cycle (vms -> peers -> vm-exec -> vms): they are reached through getters.
  let peerCalls: PeerCalls | undefined
  let peers: PeerLinks | undefined
  const machines = createMachines({ driver, paths, repo: repos.vms, log, bootTimeoutMs: config.bootTimeoutMs, agentReplyMaxBytes: config.agentReplyMaxBytes, consoleLogMaxBytes: config.consoleLogMaxBytes, onLive: (id, handle) => peerCalls?.attachBridge(id, handle) })
  const secrets = createSecretBox(config.vmSecretKey)
  const locks = new KeyedLock()
  const snapshots = createSnapshotService({ maxUserSnapshots: config.maxSnapshots, paths, repo: repos.snapshots, vms: repos.vms, seedsRepo: repos.seeds, images, machines, locks, log })
  const seeds = createSeedService({ config, images, imagesRepo: repos.images, seedsRepo: repos.seeds, snapshots, snapshotsRepo: repos.snapshots, machines, log })
  const vms = createVmService({ config, paths, repo: repos.vms, execLogs: repos.execLogs, images, machines, network, locks, driver, peers: () => peers!, onMemoryReleased: (id) => seeds.released(id) })
  const creation = createVmCreation({ config, paths, repo: repos.vms, images, machines, network, secrets, snapshots, seeds, locks, peers: () => peers!, log })
  seeds.bind(creation, vms)
  const pool = createWarmPool({ config, creation, vms, vmsRepo: repos.vms, images, log })
  const vmExec = createVmExecService({ config, paths, vms, machines, network, secrets, execLogs: repos.execLogs })
  const peerLinksRepo = createPeerLinksRepo(db)
  // The manager's own VMs (seed, pool) are never providers or consumers.
  const getVm = async (id: string) => {
    const vm = await repos.vms.get(id)
    return vm?.purpose === 'user' ? vm : undefined
  }
  peers = createPeerLinks({ links: peerLinksRepo, getVm, vmExec: () => vmExec, machines, secrets })
  peerCalls = createPeerCalls({ links: peerLinksRepo, getVm, vmExec: () => vmExec, secrets, maxRunTimeoutMs: config.maxRunTimeoutMs, log })
  return { config, accel, db: db as Db, dialect, paths, driver, images, machines, network, vms, vmExec, snapshots, seeds, pool, peers, peerCalls }
}
export type Services = Awaited<ReturnType<typeof composeServices>>
