// The end of a log file, for an error message or the manager log: when a VMM dies, the last
// thing it wrote (QEMU's reason for exiting) is usually the only explanation there is; when a
// live guest never answers, the end of its console is.
import fs from 'node:fs'

/** Enough for QEMU's last error and a line or two before it. */
export const VMM_LOG_TAIL_BYTES = 2000

/** The last lines of a guest console: the kernel's or the agent's last words. Guest-written text, bounded. */
export const CONSOLE_TAIL_BYTES = 2000

/** The last `maxBytes` of `file`, trimmed; empty when it cannot be read. */
export function logTail(file: string, maxBytes: number): string {
  let fd: number | undefined
  try {
    fd = fs.openSync(file, 'r')
    const size = fs.fstatSync(fd).size
    const buf = Buffer.alloc(Math.min(size, maxBytes))
    const n = fs.readSync(fd, buf, 0, buf.length, size - buf.length)
    return buf.subarray(0, n).toString('utf8').trim()
  } catch {
    return ''
  } finally {
    if (fd !== undefined) fs.closeSync(fd)
  }
}
