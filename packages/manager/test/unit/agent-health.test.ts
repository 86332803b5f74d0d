// The host notices a guest agent that was restarted by the guest init, and one that stops
// answering (VM -> ERROR, then back to RUNNING). The agent runs as root in the guest and
// nothing outside the guest can kill it, so this one fault is simulated with a scripted agent
// client; the database, the state changes (through the one transition function, under the
// VM's lock) and the monitor are the real ones.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, expect, it } from 'vitest'
import pino from 'pino'
import { AGENT_PROTOCOL_VERSION } from '@rds/protocol'
import { openDatabase, type Db } from '../../src/store/db.ts'
import { createVmsRepo, type VmRecord, type VmsRepo } from '../../src/store/vms-repo.ts'
import { createSupervisor, type AgentFactory } from '../../src/runtime/supervisor/supervisor.ts'
import { createLifecycle } from '../../src/services/vm-lifecycle.ts'
import { KeyedLock } from '../../src/services/locks.ts'
import { createPaths } from '../../src/runtime/storage/paths.ts'
import type { AgentClient } from '../../src/runtime/agent/client.ts'
import type { VmHandle, VmmDriver } from '../../src/runtime/vmm/driver.ts'

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-health-'))
let db: Db
let repo: VmsRepo

beforeAll(async () => {
  db = (await openDatabase({ sqlitePath: path.join(root, 'm.db') })).db
  repo = createVmsRepo(db)
})
afterAll(async () => {
  await db.destroy()
  fs.rmSync(root, { recursive: true, force: true })
})

/**
 * Health answers in order; 'silent' = the request fails as a timeout would; 'busy' = it fails the
 * same way while the agent keeps sending bytes (a transfer ahead of it in the channel).
 */
function scriptedAgent(script: Array<number | 'silent' | 'busy'>, resets: { n: number }): AgentFactory {
  let heard = 0
  return () =>
    ({
      waitReady: async () => {},
      reset: () => void resets.n++,
      close: () => {},
      bytesHeard: () => heard,
      call: async () => {
        const next = script.length > 1 ? script.shift()! : script[0]
        if (next === 'busy') heard += 4096
        if (next === 'silent' || next === 'busy') throw new Error('agent did not reply within 20 ms')
        return { status: 'ok', agentVersion: 't', protocolVersion: AGENT_PROTOCOL_VERSION, uptimeMs: next }
      },
    }) as unknown as AgentClient
}

const handle: VmHandle = {
  pid: 1,
  startTime: '1',
  channels: { control: '/nonexistent', bridge: '/nonexistent', console: '/nonexistent' },
  exited: new Promise(() => {}),
  isAlive: () => true,
  pause: async () => {},
  resume: async () => {},
  snapshot: async () => ({ pauseMs: 0, memoryInFile: true, ramBytes: 64 << 20 }),
  kill: async () => {},
}
const driver: VmmDriver = { describe: () => ({ vmm: 'scripted', accel: 'tcg' }), runFiles: [], bootRamBytes: (memMb: number) => memMb << 20, vmmOverheadMb: () => 0, boot: async () => handle, restore: async () => handle, reattach: async () => undefined, sweep: () => [] }

async function until(pred: (vm: VmRecord) => boolean, id: string): Promise<VmRecord> {
  for (let i = 0; i < 500; i++) {
    const vm = (await repo.get(id))!
    if (pred(vm)) return vm
    await sleep(10)
  }
  throw new Error(`condition not reached: ${JSON.stringify(await repo.get(id))}`)
}

it('reports an agent restart, then ERROR while it is silent, then RUNNING again', async () => {
  const resets = { n: 0 }
  const script: Array<number | 'silent' | 'busy'> = [10_000, 15_000, 200, 'silent', 'silent', 'silent', 'silent', 300]
  const log = pino({ level: 'silent' })
  const supervisor = createSupervisor({ driver, paths: createPaths(root, root, path.join(root, 'ram')), log, bootTimeoutMs: 1000, healthIntervalMs: 20, agentFactory: scriptedAgent(script, resets) })
  const locks = new KeyedLock()
  const lifecycle = createLifecycle({ repo, locks, log })
  lifecycle.follow(supervisor)
  const vm: VmRecord = { id: 'vm-h', state: 'CREATED', cpu: 1, memMb: 256, imageId: 'i', guestIp: null, allowIps: [], allowDomains: [], secretEnv: null, outboundInternet: false, provisionMode: 'boot', createdAt: new Date().toISOString(), startedAt: null, bootMs: null, lastError: null, vmmPid: null, vmmStartTime: null, purpose: 'user', memorySnapshotId: null, sourceSnapshotId: null, inheritedSecretNames: [], createdBy: null, expiresAt: null, ttlSeconds: null, onExpire: 'delete', labels: {} }
  await repo.insertWithinQuota(vm, { maxVms: 10 })
  await locks.run(vm.id, async () => {
    await supervisor.boot({ id: vm.id, cpu: 1, memMb: 256, files: { kernel: 'k', initrd: 'i', rootfs: 'r' } }, { onProcess: async () => void (await lifecycle.transition(vm.id, 'STARTING')) })
    await lifecycle.transition(vm.id, 'RUNNING')
  })

  expect((await until((v) => v.lastError?.includes('restarted') ?? false, vm.id)).state).toBe('RUNNING')
  const down = await until((v) => v.state === 'ERROR', vm.id)
  expect(down.lastError).toContain('guest agent not responding')
  expect(resets.n).toBeGreaterThan(0) // the silent session was dropped so a reconnect can reach a new agent
  const back = await until((v) => v.state === 'RUNNING', vm.id)
  expect(back.lastError).toContain('answers again')
  await supervisor.kill(vm.id)
})

it('keeps a VM whose agent is busy (checks time out while it keeps sending) RUNNING, with its session', async () => {
  const resets = { n: 0 }
  const script: Array<number | 'silent' | 'busy'> = [1000, 'busy', 'busy', 'busy', 'busy', 'busy', 'busy', 2000]
  const log = pino({ level: 'silent' })
  const supervisor = createSupervisor({ driver, paths: createPaths(root, root, path.join(root, 'ram')), log, bootTimeoutMs: 1000, healthIntervalMs: 20, agentFactory: scriptedAgent(script, resets) })
  const locks = new KeyedLock()
  const lifecycle = createLifecycle({ repo, locks, log })
  lifecycle.follow(supervisor)
  const vm: VmRecord = { id: 'vm-busy', state: 'CREATED', cpu: 1, memMb: 256, imageId: 'i', guestIp: null, allowIps: [], allowDomains: [], secretEnv: null, outboundInternet: false, provisionMode: 'boot', createdAt: new Date().toISOString(), startedAt: null, bootMs: null, lastError: null, vmmPid: null, vmmStartTime: null, purpose: 'user', memorySnapshotId: null, sourceSnapshotId: null, inheritedSecretNames: [], createdBy: null, expiresAt: null, ttlSeconds: null, onExpire: 'delete', labels: {} }
  await repo.insertWithinQuota(vm, { maxVms: 10 })
  await locks.run(vm.id, async () => {
    await supervisor.boot({ id: vm.id, cpu: 1, memMb: 256, files: { kernel: 'k', initrd: 'i', rootfs: 'r' } }, { onProcess: async () => void (await lifecycle.transition(vm.id, 'STARTING')) })
    await lifecycle.transition(vm.id, 'RUNNING')
  })
  // Every busy check has been made once the script reaches its last answer.
  for (let i = 0; i < 500 && script.length > 1; i++) await sleep(10)
  await sleep(100)
  expect(script).toEqual([2000])
  expect(resets.n).toBe(0)
  const after = (await repo.get(vm.id))!
  expect([after.state, after.lastError]).toEqual(['RUNNING', null])
  await supervisor.kill(vm.id)
})
