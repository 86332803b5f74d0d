import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { DIRECT_ROOT_ARGS, qemuArgs, type QemuLaunch } from '../../src/runtime/vmm/qemu/args.ts'
import { imageStamp } from '../../src/services/images.ts'

const spec = (over: Partial<QemuLaunch> = {}): QemuLaunch => ({
  vmId: 'vm-1', cpu: 1, memMb: 256, kernel: '/img/vmlinux', initrd: '/img/initrd', rootfs: '/img/rootfs.ext4', overlay: '/vm/overlay.ext4', workDir: '/vm',
  controlSocket: '/vm/c.sock', bridgeSocket: '/vm/b.sock', qmpSocket: '/vm/q.sock', pidFile: '/vm/pid', consoleSocket: '/vm/con.sock', vmmLog: '/vm/log',
  memory: { file: '/shm/ram', shared: true },
  ...over,
})
const opts = { accel: 'tcg' as const, instance: 'i', tscKhz: 2_000_000, kernelArgs: ['x=1'] }
const append = (args: string[]) => args[args.indexOf('-append') + 1]!

describe('qemuArgs', () => {
  it('boots with the initrd when the image has one, and leaves the root to it', () => {
    const args = qemuArgs(spec(), opts)
    expect(args[args.indexOf('-initrd') + 1]).toBe('/img/initrd')
    expect(append(args)).not.toContain('root=')
    expect(append(args)).toMatch(/ x=1$/)
  })

  it('without an initrd, has the kernel mount the image read-only and start rds-init from it', () => {
    const noInitrd = spec({ initrd: undefined })
    const args = qemuArgs(noInitrd, opts)
    expect(args).not.toContain('-initrd')
    expect(append(args)).toContain(`${DIRECT_ROOT_ARGS.join(' ')} x=1`)
    expect(DIRECT_ROOT_ARGS).toEqual(expect.arrayContaining(['root=/dev/vda', 'ro', 'init=/sbin/rds-init']))
    // A restore resumes on the boot's command line: the same spec gives the same args.
    expect(qemuArgs({ ...noInitrd, incoming: { stateFile: '/s', withoutRam: true } }, opts).slice(0, args.length)).toEqual(args)
  })
})

describe('imageStamp', () => {
  it('works without an initrd and differs from the same files with one', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-stamp-'))
    try {
      for (const f of ['k', 'i', 'r']) fs.writeFileSync(path.join(dir, f), f)
      const without = await imageStamp({ kernel: path.join(dir, 'k'), rootfs: path.join(dir, 'r') })
      const withInitrd = await imageStamp({ kernel: path.join(dir, 'k'), initrd: path.join(dir, 'i'), rootfs: path.join(dir, 'r') })
      expect(without.split('/')).toHaveLength(3)
      expect(without.split('/')[1]).toBe('-')
      expect(without).not.toBe(withInitrd)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
