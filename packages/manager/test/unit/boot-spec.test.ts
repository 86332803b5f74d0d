// Where a VM's VMM files are and who the VMM runs as (supervisor/boot-spec.ts).
import { describe, expect, it } from 'vitest'
import { createPaths } from '../../src/runtime/storage/paths.ts'
import { bootSpecBeforeRunDir, bootSpecOf, type MachineConfig } from '../../src/runtime/supervisor/boot-spec.ts'

const paths = createPaths('/srv/rds', '/srv/rds/images', '/dev/shm/rds-x')
const guest = { mac: '02:72:ac:10:00:05', address: '172.16.0.5', prefixLength: 24, gateway: '172.16.0.1', nameservers: ['172.16.0.1'] }
const vm: MachineConfig = { id: 'vm-1', cpu: 1, memMb: 256, files: { kernel: '/k', rootfs: '/r' }, net: { tap: 'tap1', mac: guest.mac, guest } }

describe('bootSpecOf', () => {
  it('puts the VMM\'s sockets in its run directory and runs it as the VM\'s uid, its root in the VM directory', () => {
    const spec = bootSpecOf(paths, vm, undefined, 1_000_000_000)
    expect(spec).toMatchObject({ workDir: '/srv/rds/vms/vm-1/run', controlSocket: '/srv/rds/vms/vm-1/run/control.sock', consoleSocket: '/srv/rds/vms/vm-1/run/console.sock', overlay: '/srv/rds/vms/vm-1/overlay.ext4', vmmLog: '/srv/rds/vms/vm-1/vmm.log' })
    expect(spec.confinement).toEqual({ uid: 1_000_000_000 + 0x100005, gid: 1_000_000_000 + 0x100005, cloneGid: 1_000_000_000, rootDir: '/srv/rds/vms/vm-1/root' })
  })

  it('re-attaches a VMM started before run directories at its old paths, unconfined as it runs', () => {
    const old = bootSpecBeforeRunDir(paths, bootSpecOf(paths, vm, undefined, 1_000_000_000))
    expect(old).toMatchObject({ workDir: '/srv/rds/vms/vm-1', controlSocket: '/srv/rds/vms/vm-1/control.sock', bridgeSocket: '/srv/rds/vms/vm-1/bridge.sock', consoleSocket: '/srv/rds/vms/vm-1/console.sock' })
    expect(old.confinement).toBeUndefined()
  })
})
