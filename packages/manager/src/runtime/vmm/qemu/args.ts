// The QEMU command line of a VM: the microvm machine tuned as measured in FACTS.md (PVH
// vmlinux, no option ROMs or ISA serial, RTC on, preset TSC/lpj to skip calibration).
import type { BootSpec, SavedState } from '../driver.ts'
import { BRIDGE_PORT_NAME, CONTROL_PORT_NAME } from '@rds/protocol'

/** Marks our processes in `ps`/`/proc/<pid>/cmdline` so the startup sweep can find them. */
export const processName = (instance: string, vmId: string) => `rds:${instance}:${vmId}`

/** The VM id in a process's marker, when it is a VMM of `instance` (its `-name`). */
export function markedVmId(cmdline: string[] | undefined, instance: string): string | undefined {
  const prefix = processName(instance, '')
  const i = cmdline?.indexOf('-name') ?? -1
  const name = i >= 0 ? cmdline![i + 1] : undefined
  return name?.startsWith(prefix) ? name.slice(prefix.length) : undefined
}

/**
 * The guest kernel prints only emergencies and alerts (a panic, an oops) to the console: boot
 * messages would slow a TCG boot, but without these a guest that panics (and so reboots, which
 * ends its VMM: panic=-1, -no-reboot) would leave no word of why in console.log.
 */
export function kernelCmdline(tscKhz: number | undefined, extra: string[] = []): string {
  const timing = tscKhz ? [`tsc_early_khz=${tscKhz}`, `lpj=${Math.round((tscKhz * 1000) / 250)}`] : []
  return [
    'console=hvc0',
    'quiet',
    'loglevel=2',
    ...timing,
    'panic=-1',
    'reboot=t',
    'i8042.noaux',
    'i8042.nomux',
    'i8042.nopnp',
    'i8042.dumbkbd',
    'tsc=reliable',
    'no_timer_check',
    'noreplace-smp',
    'cryptomgr.notests',
    'rcupdate.rcu_expedited=1',
    ...extra,
  ].join(' ')
}

/** Without an initrd the kernel mounts the image itself: read-only (it is shared between
 * VMs; noload as rds-init mounts it from an initrd), then starts rds-init from it. */
export const DIRECT_ROOT_ARGS = ['root=/dev/vda', 'ro', 'rootfstype=ext4', 'rootflags=noload', 'init=/sbin/rds-init']

/** A BootSpec with what only QEMU has: its QMP socket and pidfile, and a state to load. */
export interface QemuLaunch extends BootSpec {
  /** The guest's RAM (guest-ram.ts): memMb MiB, or a little more under TCG, or a saved state's. */
  ramBytes: number
  qmpSocket: string
  pidFile: string
  incoming?: SavedState
}

export interface QemuArgsOptions {
  accel: 'kvm' | 'tcg'
  instance: string
  tscKhz: number | undefined
  kernelArgs?: string[]
  /** TCG's translation cache in MiB; absent or 0: QEMU's default (1 GiB for system emulation). */
  tbSizeMb?: number
}

/** `-accel`'s value: under TCG with the translation cache size when one is set (KVM has none). */
function accelArg(o: QemuArgsOptions): string {
  return o.accel === 'tcg' && o.tbSizeMb ? `tcg,tb-size=${o.tbSizeMb}` : o.accel
}

export function qemuArgs(spec: QemuLaunch, o: QemuArgsOptions): string[] {
  const cpu = o.accel === 'kvm' ? 'host' : 'max'
  const initrd = spec.initrd ? ['-initrd', spec.initrd] : []
  const extra = spec.initrd ? (o.kernelArgs ?? []) : [...DIRECT_ROOT_ARGS, ...(o.kernelArgs ?? [])]
  return [
    '-name', processName(o.instance, spec.vmId),
    '-accel', accelArg(o),
    '-M', 'microvm,x-option-roms=off,isa-serial=off,rtc=on,memory-backend=mem0',
    '-object', `memory-backend-file,id=mem0,size=${spec.ramBytes},mem-path=${spec.memory.file},share=${spec.memory.shared ? 'on' : 'off'}`,
    '-cpu', cpu,
    // In KiB: a TCG guest's RAM is not a whole number of MiB (guest-ram.ts).
    '-m', `${spec.ramBytes / 1024}K`,
    '-smp', String(spec.cpu),
    // seccomp: no obsolete syscalls, no setuid/setgid or namespace changes, no fork/exec (a
    // compromised QEMU cannot start a shell), no scheduler or affinity changes.
    '-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
    '-nodefaults', '-no-user-config', '-nographic', '-display', 'none', '-no-reboot',
    '-kernel', spec.kernel,
    ...initrd,
    '-append', kernelCmdline(o.accel === 'tcg' ? o.tscKhz : undefined, extra),
    '-drive', `id=root,file=${spec.rootfs},format=raw,if=none,readonly=on`,
    '-device', 'virtio-blk-device,drive=root',
    '-drive', `id=ovl,file=${spec.overlay},format=raw,if=none,cache=unsafe`,
    '-device', 'virtio-blk-device,drive=ovl',
    '-device', 'virtio-serial-device,max_ports=4',
    '-chardev', `socket,id=con0,path=${spec.consoleSocket},server=on,wait=off`,
    '-device', 'virtconsole,chardev=con0',
    '-chardev', `socket,id=ctl,path=${spec.controlSocket},server=on,wait=off`,
    '-device', `virtserialport,chardev=ctl,name=${CONTROL_PORT_NAME}`,
    '-chardev', `socket,id=brg,path=${spec.bridgeSocket},server=on,wait=off`,
    '-device', `virtserialport,chardev=brg,name=${BRIDGE_PORT_NAME}`,
    '-device', 'virtio-rng-device',
    ...(spec.net
      ? ['-netdev', `tap,id=net0,ifname=${spec.net.tap},script=no,downscript=no`, '-device', `virtio-net-device,netdev=net0,mac=${spec.net.mac}`]
      : []),
    '-qmp', `unix:${spec.qmpSocket},server=on,wait=off`,
    '-pidfile', spec.pidFile,
    // The state is fed over QMP once capabilities are set (on the command line it races them).
    ...(spec.incoming ? ['-incoming', 'defer'] : []),
  ]
}

/** Host TSC frequency in kHz (TCG guests run their TSC at the host rate). */
export function hostTscKhz(cpuinfo: string): number | undefined {
  const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)
  return m ? Math.round(Number(m[1]) * 1000) : undefined
}
