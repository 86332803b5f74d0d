// The composition root: config in, wired services out. The only place that knows which
// implementation of each dependency is used.
import fs from 'node:fs'
import type { FastifyBaseLogger } from 'fastify'
import { addressPlanOf, ConfigError, type Config } from './config.ts'
import { openDatabase, type Db } from './store/db.ts'
import { createVmsRepo } from './store/vms-repo.ts'
import { createImagesRepo } from './store/images-repo.ts'
import { createExecLogsRepo } from './store/exec-logs-repo.ts'
import { createSnapshotsRepo } from './store/snapshots-repo.ts'
import { createImageSeedsRepo } from './store/image-seeds-repo.ts'
import { createTemplatesRepo } from './store/templates-repo.ts'
import { createPaths } from './runtime/storage/paths.ts'
import { ramDirAdvice, ramDirProblem } from './runtime/storage/ram-dir.ts'
import { createQemuDriver } from './runtime/vmm/qemu/driver.ts'
import { userAslrOf } from './runtime/vmm/accel.ts'
import { detectCgroupLayout, VmmCgroups } from './runtime/vmm/confinement/cgroups.ts'
import type { VmmDriver } from './runtime/vmm/driver.ts'
import { createSupervisor } from './runtime/supervisor/supervisor.ts'
import { defaultMemoryBudgetMb } from './runtime/supervisor/memory-budget.ts'
import { instanceOf } from './runtime/reclaim/instance-mark.ts'
import { createImageService } from './services/images.ts'
import { createVmService } from './services/vms.ts'
import { createVmCreation } from './services/vm-create.ts'
import { createVmExecService } from './services/vm-exec.ts'
import { createVmFilesService } from './services/vm-files.ts'
import { createVmProcessService } from './services/vm-processes.ts'
import { createAttachTickets } from './services/attach-tickets.ts'
import { createVmLookup } from './services/vm-lookup.ts'
import { createLifecycle } from './services/vm-lifecycle.ts'
import { createProvisioner } from './services/vm-provision.ts'
import { reconcileAtStartup } from './services/startup-reconcile.ts'
import { HostNetwork } from './runtime/network/host-network.ts'
import { createNetworkService } from './services/network.ts'
import { createSecretBox } from './services/secret-env.ts'
import { KeyedLock } from './services/locks.ts'
import { createSnapshotService } from './services/snapshots.ts'
import { createSeedService } from './services/image-seeds.ts'
import { createWarmPool } from './services/warm-pool.ts'
import { createTemplateBuilder } from './services/template-build.ts'
import { createTemplateService } from './services/templates.ts'
import { createPeerLinksRepo } from './store/peer-links-repo.ts'
import { createAdminSessionsRepo } from './store/admin-sessions-repo.ts'
import { createApiKeysRepo } from './store/api-keys-repo.ts'
import { createE2bSandboxesRepo } from './store/e2b-sandboxes-repo.ts'
import { createE2bSandboxes } from './services/e2b/sandboxes.ts'
import { createCodeContexts } from './services/e2b/interpreter/code-contexts.ts'
import { createAdminSessions } from './services/accounts/admin-sessions.ts'
import { createApiKeys } from './services/accounts/api-keys.ts'
import { createActivityRepo } from './store/activity-repo.ts'
import { createActivityLog, type RecordActivity } from './services/activity/activity-log.ts'
import { stateChangeActivity } from './services/activity/vm-activity.ts'
import { createOverview } from './services/activity/overview.ts'
import { createWebhooksRepo } from './store/webhooks-repo.ts'
import { managerKey } from './runtime/storage/manager-key.ts'
import { createSecretSealer } from './services/webhooks/webhook-secret.ts'
import { createWebhooks } from './services/webhooks/webhooks.ts'
import { createWebhookDispatcher } from './services/webhooks/webhook-dispatcher.ts'
import { createPeerLinks } from './services/peers/peer-links.ts'
import { createPeerCalls } from './services/peers/peer-calls.ts'
import { createExpiryReaper } from './services/vm-expiry.ts'
import { createMetrics } from './services/metrics/prometheus.ts'
import { createReadiness } from './services/readiness.ts'
import { createPublicPortsRepo } from './store/public-ports-repo.ts'
import { createPreviewTokens } from './services/previews/preview-token.ts'
import { createPreviews } from './services/previews/previews.ts'

export interface AccelRef {
  value: 'kvm' | 'tcg'
}

/**
 * `overrides` are for the service tests: `driver`, another VMM driver (they run on a fake one);
 * `healthIntervalMs`, the agent health check period, so a silent agent shows in milliseconds.
 */
export async function composeServices(config: Config, log: FastifyBaseLogger, accel: AccelRef = { value: 'tcg' }, overrides: { driver?: VmmDriver; healthIntervalMs?: number } = {}) {
  fs.mkdirSync(config.storageRoot, { recursive: true, mode: 0o700 })
  fs.mkdirSync(config.imagesDir, { recursive: true, mode: 0o755 })
  // One instance marker per storage root: two managers on one host never touch each other's VMs.
  const instance = instanceOf(config.storageRoot)
  const paths = createPaths(config.storageRoot, config.imagesDir, config.vmRamDir ?? `/dev/shm/rds-${instance}`)
  // The RAM directory on tmpfs is made by the first boot: tools that only compose services leave
  // nothing there. One that exists already must be ours (the supervisor checks again at each boot).
  const ramProblem = ramDirProblem(paths.ramRoot)
  if (ramProblem) throw new ConfigError(ramDirAdvice(ramProblem))
  for (const dir of [paths.vmsRoot, paths.snapshotsRoot]) fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  const { db, dialect } = await openDatabase({ databaseUrl: config.databaseUrl, sqlitePath: config.sqlitePath })
  const repos = { vms: createVmsRepo(db, dialect), images: createImagesRepo(db), execLogs: createExecLogsRepo(db, config.execLogMaxEntries), snapshots: createSnapshotsRepo(db), seeds: createImageSeedsRepo(db), templates: createTemplatesRepo(db), peerLinks: createPeerLinksRepo(db), adminSessions: createAdminSessionsRepo(db), apiKeys: createApiKeysRepo(db), activity: createActivityRepo(db), webhooks: createWebhooksRepo(db) }
  const activity = createActivityLog({ repo: repos.activity, retentionDays: config.activityRetentionDays, maxEvents: config.activityMaxEvents, log })
  const recordActivity: RecordActivity = (input) => void activity.record(input)
  const sessions = createAdminSessions({ config: config.admin, repo: repos.adminSessions, activity: recordActivity })
  const apiKeys = createApiKeys({ repo: repos.apiKeys, activity: recordActivity })
  const mKey = managerKey(config.storageRoot)
  const sealer = createSecretSealer(mKey)
  const webhooks = createWebhooks({ repo: repos.webhooks, sealer, activity: recordActivity })
  const deliveries = createWebhookDispatcher({ repo: repos.webhooks, sealer, activity, config: { ...config.webhooks, retentionDays: config.activityRetentionDays }, log })

  // runtime: the host network, the VMM driver and the supervisor of live VMs
  const plan = addressPlanOf(config)
  const hostNetwork = new HostNetwork(plan, instance, config.port, { excluded: config.egressExcluded, limits: config.vmConnectionLimits, dnsLimits: config.dnsLimits, vmmUidBase: config.vmmUidBase })
  const driver = overrides.driver ?? createQemuDriver({ qemuBin: config.qemuBin, accel: () => accel.value, instance,
    netnsPath: hostNetwork.netnsPath,
    cgroups: vmmCgroups(instance),
    kernelArgs: config.testGuestRoot ? ['rds.test_root=1'] : [],
    tbSizeMb: config.qemuTbSizeMb,
    snapshotMode: config.snapshotLive === undefined ? 'auto' : config.snapshotLive ? 'live' : 'stop',
  })
  const supervisor = createSupervisor({ driver, paths, log, bootTimeoutMs: config.bootTimeoutMs, healthIntervalMs: overrides.healthIntervalMs, agentReplyMaxBytes: config.agentReplyMaxBytes, consoleLogMaxBytes: config.consoleLogMaxBytes, vmmLogMaxBytes: config.vmmLogMaxBytes, memoryBudgetMb: config.vmMemoryBudgetMb ?? defaultMemoryBudgetMb(fs.readFileSync('/proc/meminfo', 'utf8')), vmmUidBase: config.vmmUidBase,
    userAslr: () => userAslrOf(config.sandboxAslr, accel.value) })

  // services, each built after what it uses: no cycles, no late binding
  const metrics = createMetrics({ vms: repos.vms, memoryBudget: supervisor.memory })
  const locks = new KeyedLock()
  const secrets = createSecretBox(config.vmSecretKey)
  const network = createNetworkService({ plan, host: hostNetwork, repo: repos.vms, dnsUpstreams: config.dnsUpstreams, dnsLimits: config.dnsLimits, maxAllowIps: config.maxAllowIps, excluded: config.egressExcluded, log })
  const images = createImageService({ repo: repos.images, vms: repos.vms, snapshots: repos.snapshots, templates: repos.templates, seeds: repos.seeds, template: { cpu: config.seedCpu, memMb: config.seedMemMb }, paths, activity: recordActivity })
  const lifecycle = createLifecycle({ repo: repos.vms, locks, log })
  lifecycle.follow(supervisor)
  lifecycle.onStateChange((change) => {
    const entry = stateChangeActivity(change)
    if (entry) recordActivity(entry)
  })
  const lookup = createVmLookup(repos.vms)
  const vmExec = createVmExecService({ config, paths, vms: lookup, machines: supervisor, network, secrets, execLogs: repos.execLogs, activity: recordActivity, metrics: metrics.report })
  const vmFiles = createVmFilesService({ vms: lookup, machines: supervisor })
  const vmProcesses = createVmProcessService({ vms: lookup, machines: supervisor, secrets, tickets: createAttachTickets() })
  const peers = createPeerLinks({ links: repos.peerLinks, getVm: lookup.find, vmExec, machines: supervisor, secrets, activity: recordActivity })
  const peerCalls = createPeerCalls({ links: repos.peerLinks, getVm: lookup.find, vmExec, secrets, maxRunTimeoutMs: config.maxRunTimeoutMs, log })
  supervisor.subscribe((e) => {
    if (e.type === 'live') peerCalls.attachBridge(e.vmId, e.handle)
  })
  const provisioner = createProvisioner({ config, paths, repo: repos.vms, execLogs: repos.execLogs, images, supervisor, lifecycle, network, peers, locks, log })
  const snapshots = createSnapshotService({ maxUserSnapshots: config.maxSnapshots, paths, repo: repos.snapshots, vms: repos.vms, seedsRepo: repos.seeds, templatesRepo: repos.templates, images, machines: supervisor, locks, secrets, activity: recordActivity, log })
  const seeds = createSeedService({ config, paths, images, imagesRepo: repos.images, seedsRepo: repos.seeds, snapshots, snapshotsRepo: repos.snapshots, supervisor, provisioner, activity: recordActivity, log })
  lifecycle.onMemoryReleased((id) => seeds.released(id))
  const pool = createWarmPool({ config, provisioner, seeds, vmsRepo: repos.vms, images, network, secrets, locks, memory: supervisor.memory, log })
  // A warm VM that failed is never handed out: the (re)fill replaces it now, not at the next restart.
  lifecycle.onVmFailed(() => void pool.start())
  const creation = createVmCreation({ config, paths, images, network, secrets, snapshots, seeds, pool, peers, provisioner, metrics: metrics.report })
  const vms = createVmService({ config, repo: repos.vms, lookup, creation, provisioner, images, supervisor, lifecycle, network, locks, activity: recordActivity })
  const previews = createPreviews({ config: config.preview, vms: lookup, publicPorts: createPublicPortsRepo(db), tokens: createPreviewTokens(mKey), hostLink: plan.hostLink, activity: recordActivity })
  const builder = createTemplateBuilder({ config, paths, images, provisioner, supervisor, snapshots, log })
  const templates = createTemplateService({ config, paths, repo: repos.templates, snapshotsRepo: repos.snapshots, imagesRepo: repos.images, images, network, snapshots, vms, builder, activity: recordActivity, log })
  lifecycle.onMemoryReleased((id) => templates.released(id))
  const expiry = createExpiryReaper({ repo: repos.vms, vms, log })
  const e2b = createE2bSandboxes({ vms, repo: createE2bSandboxesRepo(db as Db), templates, shape: { cpu: config.seedCpu, memMb: config.seedMemMb } })
  const codeContexts = createCodeContexts({ processes: vmProcesses, envVarsOf: (id) => e2b.envVarsOf(id) })
  const overview = createOverview({ storageRoot: config.storageRoot, vms: repos.vms, snapshots: repos.snapshots, seeds: repos.seeds, templates: repos.templates, pool })
  const readiness = createReadiness({ db, images: repos.images, paths, network, log })
  const reconcile = () => reconcileAtStartup({ paths, repo: repos.vms, images, supervisor, lifecycle, network, locks })
  return { config, accel, db: db as Db, dialect, paths, supervisor, images, network, vms, vmExec, vmFiles, vmProcesses, snapshots, seeds, templates, pool, peers, peerCalls, sessions, apiKeys, activity, overview, webhooks, deliveries, expiry, metrics, readiness, previews, e2b, codeContexts, reconcile }
}
export type Services = Awaited<ReturnType<typeof composeServices>>

/** Every VMM is confined to its VM's shape: a host without the cgroup controllers cannot run VMs here. */
function vmmCgroups(instance: string): VmmCgroups {
  const layout = detectCgroupLayout()
  if (!layout) throw new ConfigError('the host has no cgroup memory, cpu and pids controllers (cgroup v2 at /sys/fs/cgroup, or v1 trees under it): every VMM runs in a cgroup of its own')
  return new VmmCgroups(layout, instance)
}
