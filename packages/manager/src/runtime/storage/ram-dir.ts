// The guest RAM directory sits on a tmpfs that other local users can write to (/dev/shm by
// default, its name derived from STORAGE_ROOT and so predictable). A directory someone else made
// there first, or a symlink to one, would receive every guest's memory: it is only used when
// this process made it, or when it looks exactly as if it had (our uid, mode 0700, no symlink).
import fs from 'node:fs'
import path from 'node:path'

/** Why `dir` must not hold guest memory; undefined when it is ours or does not exist yet. */
export function ramDirProblem(dir: string): string | undefined {
  let st: fs.Stats
  try {
    st = fs.lstatSync(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const uid = process.getuid?.() ?? 0
  if (st.isSymbolicLink()) return `the guest RAM directory ${dir} (VM_RAM_DIR) is a symbolic link`
  if (!st.isDirectory()) return `the guest RAM directory ${dir} (VM_RAM_DIR) is not a directory`
  if (st.uid !== uid) return `the guest RAM directory ${dir} (VM_RAM_DIR) is owned by uid ${st.uid}, not by the manager's uid ${uid}`
  if ((st.mode & 0o777) !== 0o700) return `the guest RAM directory ${dir} (VM_RAM_DIR) has mode 0${(st.mode & 0o777).toString(8)}, not 0700`
  return undefined
}

/** The sentence an operator reads: what is wrong and what to do about it. */
export const ramDirAdvice = (problem: string) =>
  `${problem}; guest memory is never written there. Another user may have made it: remove it (the manager creates it itself), or point VM_RAM_DIR at a directory owned by the manager with mode 0700`

/**
 * Makes the directory unless it exists, then checks what is there. The last component is made
 * without `recursive` so that an entry someone else made meanwhile is seen (EEXIST) and checked,
 * never adopted.
 */
export function ensureRamDir(dir: string): string | undefined {
  fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 })
  try {
    fs.mkdirSync(dir, { mode: 0o700 })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  return ramDirProblem(dir)
}
