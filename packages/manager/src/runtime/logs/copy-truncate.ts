// A log written by a process the manager does not own the output of: QEMU writes its
// stdout/stderr straight into vmm.log (O_APPEND). The manager cannot put a pipe in between,
// because QEMU runs detached and must outlive a manager restart: with the manager gone, the pipe's
// reader would be gone and QEMU would die of SIGPIPE or block on a full pipe. So the file is kept
// small from outside, by copy-truncate: past half the budget, its newest half-budget becomes
// `file.1` and the file is cut to zero. O_APPEND makes the writer's next write land at the new end
// (offset 0), so no sparse hole grows where the old data was. What the writer adds between the copy
// and the cut is lost: acceptable for diagnostics, which is all this file is.
import fsp from 'node:fs/promises'
import { rotatedName } from './rotating-log.ts'

/**
 * Cuts `file` when it holds `maxBytes / 2` or more; the two files then hold at most `maxBytes`
 * together (plus what the writer adds until the next check). Returns whether it cut.
 */
export async function copyTruncate(file: string, maxBytes: number): Promise<boolean> {
  const half = Math.max(1, Math.floor(maxBytes / 2))
  let fh
  try {
    fh = await fsp.open(file, 'r+')
  } catch {
    return false // not there (yet, or any more)
  }
  try {
    const { size } = await fh.stat()
    if (size < half) return false
    const keep = Buffer.alloc(half)
    const { bytesRead } = await fh.read(keep, 0, half, size - half)
    // Written aside and renamed: a reader of file.1 never sees it half-written.
    const tmp = `${rotatedName(file)}.tmp`
    await fsp.writeFile(tmp, keep.subarray(0, bytesRead), { mode: 0o600 })
    await fsp.rename(tmp, rotatedName(file))
    await fh.truncate(0)
    return true
  } finally {
    await fh.close()
  }
}
