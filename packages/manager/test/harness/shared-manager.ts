// One manager for the VM test files whose tests need nothing of a manager but a VM: started once
// per run by shared-manager-setup.ts (the vm project's global setup) with image seeds on, as in
// production, so a create of the template shape resumes from the seed and any other shape boots
// cold. Files that restart a manager or need other settings keep a ManagerProcess of their own.
import fs from 'node:fs'
import { inject } from 'vitest'
import { instanceOf } from '../../src/runtime/reclaim/instance-mark.ts'
import { ManagerClient, ownInstances } from './manager-process.ts'

/**
 * The two ways a VM comes up, for tests whose behaviour must not depend on it (describe.each):
 * restored from the image seed (the template shape, the production default) and cold-booted.
 */
export const VM_ORIGINS = [
  { origin: 'restored from the image seed', shape: { cpu: 1, memMb: 512 }, provisionMode: 'snapshot' },
  { origin: 'cold-booted', shape: { cpu: 1, memMb: 384 }, provisionMode: 'boot' },
] as const

export interface SharedManagerInfo {
  port: number
  apiKey: string
  storageRoot: string
  /** The manager's output goes here (it runs in the main vitest process, not in the test's). */
  logFile: string
  /** The manager process (memory figures: /proc/<pid>/status). */
  pid: number
}

declare module 'vitest' {
  export interface ProvidedContext {
    sharedManager: SharedManagerInfo
  }
}

class SharedManagerClient extends ManagerClient {
  private readonly logFile: string
  constructor(info: SharedManagerInfo) {
    super(info)
    this.logFile = info.logFile
  }

  override get output(): string {
    return fs.readFileSync(this.logFile, 'utf8')
  }
}

/**
 * The shared manager, for this test file. Its VMs count in the leak check like the file's own:
 * a file deletes what it created there.
 */
export async function sharedManager(): Promise<ManagerClient> {
  const info = inject('sharedManager')
  ownInstances.add(instanceOf(info.storageRoot))
  const client = new SharedManagerClient(info)
  if (!(await client.loadOpenApi())) throw new Error(`the shared manager does not answer on port ${info.port}`)
  return client
}

/** The shared manager's process id, for tests that measure its memory. */
export function sharedManagerPid(): number {
  return inject('sharedManager').pid
}
