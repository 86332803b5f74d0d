// A VMM that dies before its agent answers (a restore QEMU refuses, a cgroup's memory limit): the
// create's error says how the VMM ended and what it wrote last, and nothing of the attempt stays.
// A guest that stays up and never answers: the end of its console goes to the manager log before
// the VM is removed. The VMM's death and the guest's silence are the faults simulated here (a
// scripted driver); the supervisor, the agent client and the console capture are the real ones.
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import { Writable } from 'node:stream'
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
      snapshot: async () => ({ pauseMs: 0, memoryInFile: true, ramBytes: 64 << 20 }),
      kill: async () => {},
    }
  }
  return { describe: () => ({ vmm: 'scripted', accel: 'tcg' }), runFiles: [], bootRamBytes: (memMb: number) => memMb << 20, vmmOverheadMb: () => 0, boot: start, restore: start, reattach: async () => undefined, sweep: () => [] }
}

it('a restore whose VMM exits says how it ended and what it wrote last', async () => {
  const said = 'qemu-system-x86_64: Missing section footer for virtio-net\nqemu-system-x86_64: load of migration failed: Invalid argument'
  const supervisor = createSupervisor({ driver: dyingDriver(said, { code: 1, signal: null }), paths: createPaths(root, root, path.join(root, 'ram')), log: pino({ level: 'silent' }), bootTimeoutMs: 5000 })
  const err = await supervisor.restore({ id: 'vm-r', cpu: 1, memMb: 64, files: { kernel: 'k', initrd: 'i', rootfs: 'r' } }, { stateFile: path.join(root, 'state'), memoryFile: path.join(root, 'mem'), memoryInFile: true, ramBytes: 64 << 20 }, {}).catch((e: unknown) => e)
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

it('a VMM that exits cleanly during a restore is said to have a guest that rebooted (a guest kernel panic)', async () => {
  const supervisor = createSupervisor({ driver: dyingDriver('', { code: 0, signal: null }), paths: createPaths(root, root, path.join(root, 'ram')), log: pino({ level: 'silent' }), bootTimeoutMs: 5000 })
  const err = (await supervisor.restore({ id: 'vm-p', cpu: 1, memMb: 64, files: { kernel: 'k', initrd: 'i', rootfs: 'r' } }, { stateFile: path.join(root, 'state'), memoryFile: path.join(root, 'mem'), memoryInFile: true, ramBytes: 64 << 20 }, {}).catch((e: unknown) => e)) as VmmError
  expect([err.kind, err.message]).toEqual(['restore_failed', 'VM process exited before its agent answered (exit 0; the guest rebooted or powered off, as a guest kernel panic makes it do): qemu-system-x86_64: starting'])
  supervisor.detachAll()
})

it('a guest that stays up and never answers leaves the end of its console in the manager log', async () => {
  const dir = fs.mkdtempSync(path.join(root, 'silent-'))
  const consoleSocket = path.join(dir, 'console.sock')
  const controlSocket = path.join(dir, 'control.sock')
  const lastWords = 'rds-agent warn virtio port rds.control: not present'
  // The guest console says something; the control channel accepts and never answers a SYNC.
  const consoleServer = net.createServer((c) => c.write(`[    0.912345] Run /sbin/rds-init as init process\n${lastWords}\n`))
  const controlServer = net.createServer(() => {})
  await new Promise<void>((r) => consoleServer.listen(consoleSocket, r))
  await new Promise<void>((r) => controlServer.listen(controlSocket, r))
  let killed = false
  const driver: VmmDriver = {
    describe: () => ({ vmm: 'scripted', accel: 'tcg' }),
    runFiles: [],
    bootRamBytes: (memMb: number) => memMb << 20,
    vmmOverheadMb: () => 0,
    boot: async (spec) => {
      fs.mkdirSync(path.dirname(spec.vmmLog), { recursive: true })
      return {
      pid: 2 ** 22 + 2,
      startTime: '1',
      channels: { control: controlSocket, bridge: '/nonexistent', console: consoleSocket },
      exited: new Promise(() => {}),
      isAlive: () => !killed,
      pause: async () => {},
      resume: async () => {},
      snapshot: async () => ({ pauseMs: 0, memoryInFile: true, ramBytes: 64 << 20 }),
      kill: async () => {
        killed = true
      },
      }
    },
    restore: async () => Promise.reject(new Error('unused')),
    reattach: async () => undefined,
    sweep: () => [],
  }
  const lines: string[] = []
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk))
      done()
    },
  })
  const supervisor = createSupervisor({ driver, paths: createPaths(root, root, path.join(root, 'ram')), log: pino({ level: 'warn' }, sink), bootTimeoutMs: 1500 })
  const err = (await supervisor.boot({ id: 'vm-s', cpu: 1, memMb: 64, files: { kernel: 'k', initrd: 'i', rootfs: 'r' } }, {}).catch((e: unknown) => e)) as VmmError
  expect(err.kind).toBe('start_failed')
  expect(err.message).toMatch(/^agent did not answer within 1500 ms/)
  expect(killed).toBe(true)
  const entry = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'the VM did not become ready; the end of its console')
  expect(entry).toMatchObject({ level: 40, vmId: 'vm-s' })
  expect(entry.console).toContain(lastWords)
  expect(supervisor.get('vm-s')).toBeUndefined()
  supervisor.detachAll()
  consoleServer.close()
  controlServer.close()
})
