// Every host path the manager uses is built here, from the storage root and an id.
// Ids reaching this module have been validated (see api/schemas/common.ts), but the
// functions check again: a path is never built from something that could climb out.
import path from 'node:path'

const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/

function safe(id: string): string {
  if (!SAFE_ID.test(id)) throw new Error(`unsafe id for a path: ${JSON.stringify(id)}`)
  return id
}

/**
 * `ramRoot` holds the guest RAM files of booted VMs: on tmpfs, so guest memory is never
 * written back to a disk, yet it is a file a snapshot can copy while the guest is paused.
 */
export function createPaths(storageRoot: string, imagesDir: string, ramRoot: string) {
  const vmsRoot = path.join(storageRoot, 'vms')
  const snapshotsRoot = path.join(storageRoot, 'snapshots')
  const vmDir = (id: string) => path.join(vmsRoot, safe(id))
  /** The VMM's own directory (its uid's, 0700): every socket and file it creates is here, nothing the manager writes. */
  const runDir = (id: string) => path.join(vmDir(id), 'run')
  const snapshotDir = (id: string) => path.join(snapshotsRoot, safe(id))
  return {
    storageRoot,
    imagesDir,
    vmsRoot,
    vmDir,
    runDir,
    /** An empty directory the VMM's root is mounted on, in the VMM's mount namespace only. */
    vmmRoot: (id: string) => path.join(vmDir(id), 'root'),
    ramRoot,
    ramFile: (id: string) => path.join(ramRoot, `${safe(id)}.ram`),
    snapshotsRoot,
    snapshotDir,
    snapshotState: (id: string) => path.join(snapshotDir(id), 'state.bin'),
    snapshotMemory: (id: string) => path.join(snapshotDir(id), 'memory.raw'),
    snapshotOverlay: (id: string) => path.join(snapshotDir(id), 'overlay.ext4'),
    overlay: (id: string) => path.join(vmDir(id), 'overlay.ext4'),
    controlSocket: (id: string) => path.join(runDir(id), 'control.sock'),
    bridgeSocket: (id: string) => path.join(runDir(id), 'bridge.sock'),
    consoleLog: (id: string) => path.join(vmDir(id), 'console.log'),
    consoleSocket: (id: string) => path.join(runDir(id), 'console.sock'),
    vmmLog: (id: string) => path.join(vmDir(id), 'vmm.log'),
    imageDir: (id: string) => path.join(imagesDir, safe(id)),
    templatesRoot: path.join(storageRoot, 'templates'),
    /** A template's files: the tar.gz as uploaded, never unpacked on the host (the build VM's agent checks and unpacks it). */
    templateFiles: (name: string) => path.join(storageRoot, 'templates', `${safe(name)}.tar.gz`),
    apiKeyFile: path.join(storageRoot, 'api-key'),
  }
}
export type Paths = ReturnType<typeof createPaths>
