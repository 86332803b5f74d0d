import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { DIRECT_ROOT_ARGS, markedVmId, qemuArgs, type QemuLaunch } from '../../src/runtime/vmm/qemu/args.ts'
import { bootRamBytes } from '../../src/runtime/vmm/qemu/guest-ram.ts'
import { imageStamp } from '../../src/services/images.ts'

const spec = (over: Partial<QemuLaunch> = {}): QemuLaunch => ({
  vmId: 'vm-1', cpu: 1, memMb: 256, kernel: '/img/vmlinux', initrd: '/img/initrd', rootfs: '/img/rootfs.ext4', overlay: '/vm/overlay.ext4', workDir: '/vm',
  controlSocket: '/vm/c.sock', bridgeSocket: '/vm/b.sock', qmpSocket: '/vm/q.sock', pidFile: '/vm/pid', consoleSocket: '/vm/con.sock', vmmLog: '/vm/log',
  memory: { file: '/shm/ram', shared: true }, ramBytes: bootRamBytes(over.memMb ?? 256, 'tcg'),
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
    expect(qemuArgs({ ...noInitrd, incoming: { stateFile: '/s', withoutRam: true, ramBytes: bootRamBytes(256, 'tcg') } }, opts).slice(0, args.length)).toEqual(args)
  })
})

/** One option per line with its value, so a golden diff names the option that changed. */
function lines(args: string[]): string {
  const out: string[] = []
  for (let i = 0; i < args.length; i++) {
    const next = args[i + 1]
    if (args[i]!.startsWith('-') && next !== undefined && !next.startsWith('-')) out.push(`${args[i]} ${args[++i]}`)
    else out.push(args[i]!)
  }
  return `${out.join('\n')}\n`
}

describe('guest RAM', () => {
  it('is given to QEMU in bytes for the memory backend and in KiB for -m (a TCG guest has 8 KiB more than its memMb)', () => {
    const args = qemuArgs(spec(), opts)
    expect(args[args.indexOf('-m') + 1]).toBe('262152K')
    expect(args.find((a) => a.startsWith('memory-backend-file,'))).toContain(',size=268443648,')
  })
})

// Golden files of whole command lines (test/unit/golden/qemu/*.args; `npm run test:unit -- -u`
// rewrites them).
describe('qemuArgs golden', () => {
  const net = { tap: 'vm0123456789ab', mac: '02:72:00:00:00:01' }
  const restored = spec({ net, memory: { file: '/snapshots/s-1/memory.raw', shared: false }, incoming: { stateFile: '/snapshots/s-1/state.bin', withoutRam: true, ramBytes: bootRamBytes(256, 'tcg') } })
  const cases: Array<[string, QemuLaunch, Parameters<typeof qemuArgs>[1]]> = [
    ['booted-tcg.args', spec(), opts],
    ['booted-kvm.args', spec({ ramBytes: bootRamBytes(256, 'kvm') }), { ...opts, accel: 'kvm' }],
    ['booted-tcg-no-tsc.args', spec(), { ...opts, tscKhz: undefined }],
    ['with-nic.args', spec({ net, cpu: 2, memMb: 1024 }), opts],
    ['restored.args', restored, opts],
    ['no-initrd.args', spec({ initrd: undefined, net }), opts],
    ['booted-tcg-tb-size.args', spec(), { ...opts, tbSizeMb: 64 }],
    ['restored-tcg-tb-size.args', restored, { ...opts, tbSizeMb: 64 }],
    ['no-initrd-kvm-no-kernel-args.args', spec({ initrd: undefined, ramBytes: bootRamBytes(256, 'kvm') }), { accel: 'kvm', instance: 'i', tscKhz: 2_000_000 }],
  ]
  for (const [file, s, o] of cases) {
    it(file, async () => {
      await expect(lines(qemuArgs(s, o))).toMatchFileSnapshot(`./golden/qemu/${file}`)
    })
  }

  it('differs between kvm and tcg only in accelerator, CPU model and TSC preset', () => {
    const tcg = qemuArgs(spec(), opts)
    const kvm = qemuArgs(spec(), { ...opts, accel: 'kvm' })
    const changed = tcg.map((a, i) => [a, kvm[i]]).filter(([a, b]) => a !== b)
    expect(changed).toEqual([['tcg', 'kvm'], ['max', 'host'], [append(tcg), append(kvm)]])
    expect(append(tcg)).toContain('tsc_early_khz=2000000 lpj=8000000')
    expect(append(kvm)).not.toMatch(/tsc_early_khz|lpj=/)
  })
})

describe('qemuArgs translation cache', () => {
  const accelOf = (args: string[]) => args[args.indexOf('-accel') + 1]
  it('sizes TCG\'s translation cache when asked, and leaves QEMU\'s default otherwise', () => {
    expect(accelOf(qemuArgs(spec(), { ...opts, tbSizeMb: 32 }))).toBe('tcg,tb-size=32')
    expect(accelOf(qemuArgs(spec(), { ...opts, tbSizeMb: 0 }))).toBe('tcg')
    expect(accelOf(qemuArgs(spec(), opts))).toBe('tcg')
  })

  it('never passes it to KVM, which has no translation cache', () => {
    expect(accelOf(qemuArgs(spec(), { ...opts, accel: 'kvm', tbSizeMb: 32 }))).toBe('kvm')
  })

  it('changes nothing else on the command line: a seed taken with one size resumes with another', () => {
    const small = qemuArgs(spec({ incoming: { stateFile: '/s', withoutRam: true, ramBytes: bootRamBytes(256, 'tcg') } }), { ...opts, tbSizeMb: 16 })
    const big = qemuArgs(spec({ incoming: { stateFile: '/s', withoutRam: true, ramBytes: bootRamBytes(256, 'tcg') } }), opts)
    expect(small.filter((a, i) => a !== big[i])).toEqual(['tcg,tb-size=16'])
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

describe('markedVmId', () => {
  it('reads the VM id from a VMM of this instance only, by its -name argument', () => {
    const args = ['qemu-system-x86_64', ...qemuArgs(spec(), opts)]
    expect(markedVmId(args, 'i')).toBe('vm-1')
    expect(markedVmId(args, 'other')).toBeUndefined()
    expect(markedVmId(['sleep', 'rds:i:vm-1'], 'i')).toBeUndefined()
    expect(markedVmId(undefined, 'i')).toBeUndefined()
  })
})
