// The VMM's uid and filesystem view (confinement/vmm-user.ts, confinement/jail.ts). The jail
// script runs for real here (it needs root, as the manager does), with `sh` in QEMU's place:
// what it sees and who it is are what a confined QEMU would see and be.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { BootSpec } from '../../src/runtime/vmm/driver.ts'
import { jailVmm } from '../../src/runtime/vmm/confinement/jail.ts'
import { cloneGroupOf, vmmUserOf } from '../../src/runtime/vmm/confinement/vmm-user.ts'

describe('vmmUserOf', () => {
  it('gives each VM address its own uid and gid above the base, the base being the clone group', () => {
    expect(vmmUserOf(1_000_000_000, '172.16.0.2')).toEqual({ uid: 1_000_000_000 + 0x100002, gid: 1_000_000_000 + 0x100002 })
    expect(vmmUserOf(1_000_000_000, '172.16.1.2').uid).not.toBe(vmmUserOf(1_000_000_000, '172.16.0.2').uid)
    expect(cloneGroupOf(1_000_000_000)).toBe(1_000_000_000)
    expect(() => vmmUserOf(1_000_000_000, '172.16.0.0/24')).toThrow()
  })
})

describe('jailVmm', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-jail-'))
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }))
  const vmDir = path.join(root, 'vms', 'vm-a')
  const other = path.join(root, 'vms', 'vm-b')
  fs.mkdirSync(vmDir, { recursive: true, mode: 0o700 })
  fs.mkdirSync(other, { recursive: true, mode: 0o700 })
  for (const f of ['kernel', 'rootfs', 'overlay']) fs.writeFileSync(path.join(vmDir, f), f, { mode: 0o644 })
  fs.writeFileSync(path.join(other, 'overlay'), 'other', { mode: 0o600 })
  fs.writeFileSync(path.join(root, 'db.sqlite'), 'db', { mode: 0o600 })
  const runDir = path.join(vmDir, 'run')
  const spec: BootSpec = {
    vmId: 'vm-a', cpu: 1, memMb: 128, kernel: path.join(vmDir, 'kernel'), rootfs: path.join(vmDir, 'rootfs'), overlay: path.join(vmDir, 'overlay'),
    workDir: runDir, controlSocket: path.join(runDir, 'control.sock'), bridgeSocket: path.join(runDir, 'bridge.sock'), consoleSocket: path.join(runDir, 'console.sock'),
    vmmLog: path.join(vmDir, 'vmm.log'), memory: { file: path.join(root, 'ram'), shared: true },
  }
  const c = { uid: 1_000_123_456, gid: 1_000_123_456, cloneGid: 1_000_000_000, rootDir: path.join(vmDir, 'root') }

  it('shows the VMM its paths inside the jail', () => {
    const j = jailVmm(spec, c, 'tcg')
    expect(j.spec).toMatchObject({ kernel: '/img/kernel', rootfs: '/img/rootfs', overlay: '/vm/overlay', workDir: '/run', controlSocket: '/run/control.sock', memory: { file: '/vm/memory', shared: true } })
    expect(j.inside(path.join(runDir, 'qmp.sock'))).toBe('/run/qmp.sock')
    expect(() => j.inside(path.join(vmDir, 'overlay'))).toThrow(/outside/)
    // The VM's disk, RAM file and run directory are its uid's now.
    for (const f of [spec.overlay, spec.memory.file, runDir]) expect(fs.statSync(f).uid).toBe(c.uid)
    expect(fs.statSync(runDir).mode & 0o777).toBe(0o700)
  })

  it('runs the command as the VM uid with no capabilities, seeing only its own files', () => {
    const j = jailVmm(spec, c, 'tcg')
    fs.writeFileSync(path.join(runDir, 'probe'), '')
    const script = [
      'grep -E "^(Uid|Gid|Groups|CapEff|CapPrm|CapBnd|NoNewPrivs):" /proc/self/status',
      `test -e ${path.join(root, 'db.sqlite')} && echo db-visible || echo db-hidden`,
      'ls /vm /img /run | tr "\\n" " "; echo',
      'cat /vm/overlay; echo',
      'echo written > /run/out && echo run-writable',
      '(echo x > /img/kernel) 2>/dev/null && echo image-writable || echo image-readonly',
      '(echo x > /newfile) 2>/dev/null && echo root-writable || echo root-readonly',
    ].join('; ')
    // /proc is mounted for the probe only (QEMU gets none): it reads its own status.
    const argv = j.argv(['/bin/sh', '-c', script])
    const i = argv.indexOf('--', argv.indexOf('rds-vmm-jail'))
    argv.splice(i, 0, 'proc', '/proc', '/proc')
    const out = execFileSync(argv[0]!, argv.slice(1).map((a) => (a === 'proc' ? 'rw' : a)), { encoding: 'utf8' })
    expect(out).toMatch(new RegExp(`^Uid:\\s+${c.uid}\\s+${c.uid}\\s+${c.uid}\\s+${c.uid}$`, 'm'))
    expect(out).toMatch(new RegExp(`^Gid:\\s+${c.gid}\\s+${c.gid}\\s+${c.gid}\\s+${c.gid}$`, 'm'))
    expect(out).toMatch(/^Groups:\s*$/m)
    expect(out).toMatch(/^CapEff:\s+0+$/m)
    expect(out).toMatch(/^CapPrm:\s+0+$/m)
    expect(out).toMatch(/^CapBnd:\s+0+$/m)
    expect(out).toMatch(/^NoNewPrivs:\s+1$/m)
    expect(out).toContain('db-hidden')
    expect(out).toContain('memory overlay')
    expect(out).toContain('kernel rootfs')
    expect(out).toContain('overlay\n')
    expect(out).toContain('run-writable')
    expect(out).toContain('image-readonly')
    expect(out).toContain('root-readonly')
    expect(fs.readFileSync(path.join(runDir, 'out'), 'utf8')).toBe('written\n')
    // Nothing of the jail is mounted in the host's namespace.
    expect(fs.readdirSync(c.rootDir)).toEqual([])
  })

  it('gives a clone the clone group for its snapshot memory file, owned by no VM', () => {
    const snapMem = path.join(root, 'memory.raw')
    fs.writeFileSync(snapMem, '', { mode: 0o600 })
    const j = jailVmm({ ...spec, memory: { file: snapMem, shared: false } }, c, 'tcg')
    const st = fs.statSync(snapMem)
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([0, c.cloneGid, 0o660])
    const argv = j.argv(['true'])
    expect(argv[argv.indexOf('rds-vmm-jail') + 4]).toBe(String(c.cloneGid))
  })
})
