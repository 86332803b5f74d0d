// The manager process: configuration, first-run setup, HTTP server, graceful shutdown.
// The only file that listens on a port.
import fsp from 'node:fs/promises'
import path from 'node:path'
import pino from 'pino'
import { buildApp } from './app.ts'
import { resolveApiKey } from './api-key.ts'
import { composeServices } from './compose.ts'
import { ConfigError, loadConfig } from './config.ts'
import { ensureBuiltinImage, ensureDefaultImage } from './default-image.ts'
import { claimInstance, InstanceTakenError } from './runtime/reclaim/stale-instances.ts'
import { chooseAccel } from './runtime/vmm/accel.ts'
import { probeKvm } from './runtime/vmm/kvm-probe.ts'
import { requestLogSerializers } from './api/request-log.ts'

async function main(): Promise<void> {
  let config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error: ${err.message}\n`)
      process.exit(2)
    }
    throw err
  }
  const log = pino({ level: config.logLevel, redact: ['req.headers["x-api-key"]'], serializers: requestLogSerializers })
  keepRunningOnStrayErrors(log)
  if (process.getuid?.() !== 0) log.warn('not running as root: VM networking and some host setup need root')

  // Before anything is opened or created: this instance's mark, then dead instances' leftovers.
  await claimInstance(config.storageRoot, log)

  const { key: apiKey, source } = resolveApiKey(config.apiKey, path.join(config.storageRoot, 'api-key'))
  if (source === 'generated') {
    process.stderr.write(`\nGenerated an API key (shown once; kept in ${path.join(config.storageRoot, 'api-key')}, mode 0600):\n\n  ${apiKey}\n\n`)
  } else if (source === 'file') {
    log.info({ file: path.join(config.storageRoot, 'api-key') }, 'using the API key stored under STORAGE_ROOT')
  }

  if (config.testGuestRoot) log.warn('RDS_TEST_GUEST_ROOT=true: guests boot with a root exec hook for test suites; never use this in production')
  const s = await composeServices(config, log)
  if (config.builtinImage) await ensureBuiltinImage(s.images, config.builtinImage, log)
  else if (!config.skipDefaultImage) await ensureDefaultImage(s.images, config.cacheDir, log)
  // Chosen once per start, after the image exists: the KVM probe boots it.
  const { accel, reason } = await chooseAccel(config.accel, async () => probeKvm({ qemuBin: config.qemuBin, storageRoot: config.storageRoot, files: (await s.images.resolveForBoot(undefined).catch(() => undefined))?.files, log }))
  s.accel.value = accel
  log.info({ accel, reason }, 'VMM accelerator')

  const summary = await s.reconcile()
  const removedSnapshotDirs = await s.snapshots.reconcile()
  log.info({ ...summary, removedSnapshotDirs }, 'startup reconciliation done')
  // Interrupted builds failed, retired snapshots collected, templates of a changed image rebuilt (in the background).
  await s.templates.start()
  // Seeds, then the pool (whose VMs resume from the seed): in the background, the API serves meanwhile.
  void s.seeds.start().then(() => s.pool.start())
  s.activity.start()
  s.deliveries.start()

  const app = await buildApp(s, { apiKey, loggerInstance: log })
  await app.listen({ port: config.port, host: config.host })
  log.info(`run-dat-sheesh manager listening on http://${config.host}:${config.port} (docs at /docs)`)

  let closing = false
  const shutdown = async (signal: string) => {
    if (closing) return
    closing = true
    log.info({ signal }, 'shutting down; running VMs keep running and are re-attached on the next start')
    const force = setTimeout(() => process.exit(1), 10_000)
    force.unref()
    await app.close().catch(() => {})
    void s.pool.close()
    // A seed build in progress is abandoned; the next start removes its VM and builds again.
    void s.seeds.close()
    // A template build in progress is abandoned; the next start marks it failed.
    void s.templates.close()
    s.activity.close()
    await s.deliveries.close().catch(() => {})
    s.supervisor.detachAll()
    s.peerCalls.closeAll()
    // Running VMs keep their TAPs and rules; with no VM left nothing of ours stays on the host.
    const vmsLeft = await s.vms.countAll().catch(() => 1)
    await s.network.close(vmsLeft).catch((err) => log.warn({ err: (err as Error).message }, 'network cleanup failed'))
    await s.db.destroy().catch(() => {})
    // Guest RAM files live as long as their VMs; an empty directory is not left on tmpfs.
    if (vmsLeft === 0 && !config.vmRamDir) await fsp.rmdir(s.paths.ramRoot).catch(() => {})
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}

/**
 * Last resort. Every guest channel has its own error handling and limits (agent/*.ts,
 * console-capture.ts); an error that still escapes a listener concerns one VM's channel, and one
 * VM must not end the process that serves all the others. Errors raised for a VM carry its id.
 */
function keepRunningOnStrayErrors(log: pino.Logger): void {
  const report = (kind: string) => (err: unknown) => {
    const vmId = (err as { vmId?: unknown } | null)?.vmId
    log.error({ err, ...(typeof vmId === 'string' ? { vmId } : {}) }, `${kind}: the manager keeps running`)
  }
  process.on('uncaughtException', report('uncaught exception'))
  process.on('unhandledRejection', report('unhandled promise rejection'))
}

main().catch((err) => {
  // Checks made while composing (address plan, RAM directory) are configuration errors too, and
  // so is a second manager on one STORAGE_ROOT.
  if (err instanceof ConfigError || err instanceof InstanceTakenError) {
    process.stderr.write(`configuration error: ${err.message}\n`)
    process.exit(2)
  }
  process.stderr.write(`manager failed to start: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
