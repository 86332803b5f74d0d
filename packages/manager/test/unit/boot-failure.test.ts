// A VMM that dies before its agent answers (a restore QEMU refuses, a cgroup's memory limit): the
// create's error says how the VMM ended and what it wrote last, and nothing of the attempt stays.
// The VMM's death is the fault simulated here (a scripted driver whose process is gone, having
// written its log as QEMU does); the supervisor and the agent client are the real ones.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pino from 'pino'
import { afterAll, expect, it } from 'vitest'
import { createSupervisor } from '../../src/runtime/supervisor/supervisor.ts'
import { createPaths } from '../../src/runtime/storage/paths.ts'
import type { BootSpec, VmHandle, VmmDriver } from '../../src/runtime/vmm/driver.ts'
import { VmmError } from '../../src/runtime/vmm/vmm-error.ts'

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-bootfail-'))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

function dyingDriver(lastWords: string, exit: { code: number | null; signal: NodeJS.Signals | null }): VmmDriver {
  const start = async (spec: BootSpec): Promise<VmHandle> => {
    fs.mkdirSync(path.dirname(spec.vmmLog), { recursive: true })
    fs.writeFileSync(spec.vmmLog, `qemu-system-x86_64: starting\n${lastWords}\n`)
    return {
      pid: 2 ** 22 + 1,
      startTime: '1',
      channels: { control: path.join(root, 'no-such.sock'), bridge: '/nonexistent', console: '/nonexistent' },
      exited: Promise.resolve(exit),
      isAlive: () => false,
      pause: async () => {},
      resume: async () => {},
      snapshot: async () => ({ pauseMs: 0, memoryInFile: true }),
      kill: async () => {},
    }
  }
  return { describe: () => ({ vmm: 'scripted', accel: 'tcg' }), runFiles: [], boot: start, restore: start, reattach: async () => undefined, sweep: () => [] }
}

it('a restore whose VMM exits says how it ended and what it wrote last', async () => {
  const said = 'qemu-system-x86_64: Missing section footer for virtio-net\nqemu-system-x86_64: load of migration failed: Invalid argument'
  const supervisor = createSupervisor({ driver: dyingDriver(said, { code: 1, signal: null }), paths: createPaths(root, root, path.join(root, 'ram')), log: pino({ level: 'silent' }), bootTimeoutMs: 5000 })
  const err = await supervisor.restore({ id: 'vm-r', cpu: 1, memMb: 64, files: { kernel: 'k', initrd: 'i', rootfs: 'r' } }, { stateFile: path.join(root, 'state'), memoryFile: path.join(root, 'mem'), memoryInFile: true }, {}).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(VmmError)
  expect((err as VmmError).kind).toBe('restore_failed')
  expect((err as VmmError).message).toBe(`VM process exited before its agent answered (exit 1): qemu-system-x86_64: starting\n${said}`)
  expect(supervisor.get('vm-r')).toBeUndefined()
  expect(supervisor.memory().usedMb).toBe(0)
  supervisor.detachAll()
})

it('a boot whose VMM is killed names the signal', async () => {
  const supervisor = createSupervisor({ driver: dyingDriver('', { code: null, signal: 'SIGKILL' }), paths: createPaths(root, root, path.join(root, 'ram')), log: pino({ level: 'silent' }), bootTimeoutMs: 5000 })
  const err = (await supervisor.boot({ id: 'vm-b', cpu: 1, memMb: 64, files: { kernel: 'k', initrd: 'i', rootfs: 'r' } }, {}).catch((e: unknown) => e)) as VmmError
  expect([err.kind, err.message]).toEqual(['start_failed', 'VM process exited before its agent answered (exit SIGKILL): qemu-system-x86_64: starting'])
  supervisor.detachAll()
})
