// Global setup of the vm project: starts the shared manager (shared-manager.ts) and waits for its
// template seed, so no seed build runs while a test file does (the leak check would see its VM).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { TestProject } from 'vitest/node'
import { ManagerProcess } from './manager-process.ts'
import type { SharedManagerInfo } from './shared-manager.ts'

/** Settings of the shared manager: production defaults, plus what the files using it need. */
export const SHARED_MANAGER_ENV = {
  ENABLE_IMAGE_SEED: 'true',
  // Only the template is seeded: other shapes stay cold boots, so both paths are always there.
  SEED_SHAPES_MAX: '1',
  SNAPSHOT_TEMPLATE_CPU: '1',
  SNAPSHOT_TEMPLATE_MEM_MB: '512',
  VM_SECRET_KEY: 'shared-manager-suite-key',
  // The console test logs in as this admin.
  ADMIN_EMAIL: 'suite-admin@example.com',
  ADMIN_PASSWORD: 'suite admin password',
  // A network of its own, apart from the per-file managers' 10.202.x, and per run (by pid) so two
  // checkouts testing at once do not claim the same route.
  VM_NETWORK_CIDR: `10.205.${process.pid % 250}.0/24`,
  VM_LINK_CIDR: `169.254.205.${(process.pid % 63) * 4}/30`,
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const logFile = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-shared-manager-')) + '/manager.log'
  // There from the start: the manager (LOG_LEVEL=warn) may have nothing to say for a while.
  fs.writeFileSync(logFile, '')
  const mgr = new ManagerProcess(SHARED_MANAGER_ENV, { logFile })
  try {
    await mgr.start()
    await mgr.waitFor('the shared manager\'s template seed', async () => {
      const img = await mgr.defaultImage()
      if (img?.seedStatus === 'failed') throw new Error(`the template seed failed: ${img.seedError}`)
      return img?.seedStatus === 'ready' ? true : undefined
    })
  } catch (err) {
    await mgr.cleanup()
    fs.rmSync(path.dirname(logFile), { recursive: true, force: true })
    throw err
  }
  const info: SharedManagerInfo = { port: mgr.port, apiKey: mgr.apiKey, storageRoot: mgr.storageRoot, logFile }
  project.provide('sharedManager', info)
  return async () => {
    await mgr.cleanup()
    fs.rmSync(path.dirname(logFile), { recursive: true, force: true })
  }
}
