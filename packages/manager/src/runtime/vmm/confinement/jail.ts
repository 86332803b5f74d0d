// The VMM's user and filesystem view (issue 13, finding 3, layers 3 and 4), as Firecracker's
// jailer does it: the VMM starts in a mount namespace of its own whose root is a small tmpfs
// holding only what it needs — /usr read-only (its program and libraries), a few /dev nodes,
// the VM's image files read-only, its own disk and RAM file, and its run directory (sockets,
// pidfile) — and drops to the VM's own uid/gid with no capabilities before QEMU runs.
//
// Everything happens in exec'd programs from util-linux/coreutils (unshare, mount, mknod,
// chroot, setpriv) and one shell script: no fork, so the pid the driver records and the
// `-name` marker the sweep and reclamation read stay QEMU's own. QEMU's own `-runas` cannot be
// used: `-sandbox elevateprivileges=deny` forbids the setuid it makes.
//
// The device nodes the VMM opens are made in the jail's tmpfs, owned by the VM's uid: the host's
// /dev/net/tun and /dev/kvm keep their modes (root-only on some hosts) and no group grants a
// VMM access to another's. Opening the tun node lets it attach only to a TAP it owns (the TAP is
// made with the VM's uid as owner, host-network.ts).
import fs from 'node:fs'
import path from 'node:path'
import type { BootSpec, VmmConfinement } from '../driver.ts'
import { VmmError } from '../vmm-error.ts'

/**
 * Arguments: root dir, uid, gid, supplementary groups (comma list or -), then operations until
 * `--`, then the VMM's command. Operations: `link TARGET PATH`, `ro|rw SOURCE PATH` (bind mounts),
 * `dev PATH MAJOR MINOR MODE own|-`. 125 (a shell convention for "the wrapper failed") on any error.
 */
export const JAIL_SCRIPT = `J=$1; U=$2; G=$3; GR=$4; shift 4
mount -t tmpfs -o mode=0755,size=1m,nosuid rds-vmm "$J" || exit 125
while [ "$1" != -- ]; do
  case $1 in
    link) ln -s "$2" "$J$3" || exit 125; shift 3 ;;
    ro|rw) d=$J$3; mkdir -p "\${d%/*}" || exit 125
      if [ -d "$2" ]; then mkdir -p "$d"; else : > "$d"; fi || exit 125
      mount --bind "$2" "$d" || exit 125
      if [ "$1" = ro ]; then mount -o remount,bind,ro,nosuid,nodev "$d" || exit 125; fi; shift 3 ;;
    dev) d=$J$2; mkdir -p "\${d%/*}" || exit 125; mknod -m "$5" "$d" c "$3" "$4" || exit 125
      if [ "$6" = own ]; then chown "$U:$G" "$d" || exit 125; fi; shift 6 ;;
    *) exit 125 ;;
  esac
done
shift
mount -o remount,ro "$J" || exit 125
if [ "$GR" = - ]; then g=--clear-groups; else g=--groups=$GR; fi
exec chroot "$J" /usr/bin/setpriv --reuid="$U" --regid="$G" "$g" --bounding-set=-all --inh-caps=-all --no-new-privs -- "$@"`

/** Where a confined VMM sees its run directory. */
export const JAIL_RUN_DIR = '/run'
/** Where the VMM sees the VM's files. */
const IN_JAIL = { kernel: '/img/kernel', initrd: '/img/initrd', rootfs: '/img/rootfs', overlay: '/vm/overlay', memory: '/vm/memory', run: JAIL_RUN_DIR } as const

/** Character devices: null, zero, random, urandom for everyone; tun and kvm for the VM's uid only. */
const COMMON_DEVICES: Array<[string, number, number]> = [
  ['/dev/null', 1, 3],
  ['/dev/zero', 1, 5],
  ['/dev/random', 1, 8],
  ['/dev/urandom', 1, 9],
]

export interface Jailed {
  /** Program and arguments that start `vmm` (the command, with in-jail paths) confined. */
  argv: (vmm: string[]) => string[]
  /** The spec as the VMM sees it: every path inside the jail. */
  spec: BootSpec
  /** A host path in the run directory as the VMM sees it. */
  inside: (hostPath: string) => string
}

/**
 * Prepares the VM's files for its VMM's uid and returns how to start it. Run on every start (boot,
 * restore): the uid of a VM can differ from the last start's only across upgrades, but the run
 * directory is always fresh so nothing a previous VMM left there is trusted.
 */
export function jailVmm(spec: BootSpec, c: VmmConfinement, accel: 'kvm' | 'tcg'): Jailed {
  const runDir = spec.workDir
  try {
    prepareHostFiles(spec, c)
  } catch (err) {
    throw new VmmError('start_failed', `could not prepare the VMM's files for uid ${c.uid}: ${(err as Error).message}`, {}, { cause: err })
  }
  const inside = (hostPath: string): string => {
    const rel = path.relative(runDir, hostPath)
    if (rel.startsWith('..') || path.isAbsolute(rel)) throw new VmmError('start_failed', `${hostPath} is outside the VMM's run directory ${runDir}`)
    return path.posix.join(IN_JAIL.run, rel)
  }
  const ops: string[] = []
  for (const dir of ['/lib', '/lib64', '/bin', '/sbin']) {
    const st = lstatOr(dir)
    if (st?.isSymbolicLink()) ops.push('link', fs.readlinkSync(dir), dir)
    else if (st?.isDirectory()) ops.push('ro', dir, dir)
  }
  ops.push('ro', '/usr', '/usr')
  if (fs.existsSync('/etc/ld.so.cache')) ops.push('ro', '/etc/ld.so.cache', '/etc/ld.so.cache')
  for (const [p, major, minor] of COMMON_DEVICES) ops.push('dev', p, String(major), String(minor), '0666', '-')
  if (spec.net) ops.push('dev', '/dev/net/tun', '10', '200', '0600', 'own')
  if (accel === 'kvm') ops.push('dev', '/dev/kvm', '10', '232', '0600', 'own')
  ops.push('ro', spec.kernel, IN_JAIL.kernel)
  if (spec.initrd) ops.push('ro', spec.initrd, IN_JAIL.initrd)
  ops.push('ro', spec.rootfs, IN_JAIL.rootfs)
  ops.push('rw', spec.overlay, IN_JAIL.overlay)
  ops.push('rw', spec.memory.file, IN_JAIL.memory)
  ops.push('rw', runDir, IN_JAIL.run)
  const groups = spec.memory.shared ? '-' : String(c.cloneGid)
  return {
    argv: (vmm) => ['unshare', '--mount', '--propagation', 'private', '/bin/sh', '-c', JAIL_SCRIPT, 'rds-vmm-jail', c.rootDir, String(c.uid), String(c.gid), groups, ...ops, '--', ...vmm],
    spec: {
      ...spec,
      kernel: IN_JAIL.kernel,
      ...(spec.initrd ? { initrd: IN_JAIL.initrd } : {}),
      rootfs: IN_JAIL.rootfs,
      overlay: IN_JAIL.overlay,
      workDir: IN_JAIL.run,
      controlSocket: inside(spec.controlSocket),
      bridgeSocket: inside(spec.bridgeSocket),
      consoleSocket: inside(spec.consoleSocket),
      memory: { ...spec.memory, file: IN_JAIL.memory },
    },
    inside,
  }
}

/**
 * The VM's disk and RAM file become its uid's; the run directory is made afresh, owned by it,
 * mode 0700 (the manager, root, still reaches the sockets). A clone's memory file is its
 * snapshot's: read-write for the clone group, never owned by one clone.
 */
function prepareHostFiles(spec: BootSpec, c: VmmConfinement): void {
  fs.rmSync(spec.workDir, { recursive: true, force: true })
  fs.mkdirSync(spec.workDir, { mode: 0o700 })
  fs.chownSync(spec.workDir, c.uid, c.gid)
  fs.mkdirSync(c.rootDir, { recursive: true, mode: 0o755 })
  fs.lchownSync(spec.overlay, c.uid, c.gid)
  fs.chmodSync(spec.overlay, 0o600)
  if (spec.memory.shared) {
    // O_NOFOLLOW: the RAM directory is root's (ram-dir.ts), but a link there is never followed.
    const fd = fs.openSync(spec.memory.file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600)
    try {
      fs.fchownSync(fd, c.uid, c.gid)
      fs.fchmodSync(fd, 0o600)
    } finally {
      fs.closeSync(fd)
    }
  } else {
    fs.lchownSync(spec.memory.file, 0, c.cloneGid)
    fs.chmodSync(spec.memory.file, 0o660)
  }
}

function lstatOr(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p)
  } catch {
    return undefined
  }
}
