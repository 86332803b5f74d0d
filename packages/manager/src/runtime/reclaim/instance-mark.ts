// A running manager holds a mark for its instance: an abstract Unix socket named after it, bound
// in the host's network namespace. The kernel frees the name the moment the holder dies, kill -9
// included, so a held mark means a live process: no pidfile to go stale, no pid to be reused.
// Binding a name that is held fails (EADDRINUSE); that is how the reclamation of dead instances
// tells them from live ones, and how a second manager on one STORAGE_ROOT is refused.
//
// Abstract names have no permissions: any local user can bind one. So whoever holds a mark is
// looked up (pid, uid) and callers decide with that; a mark held by another user is never a
// manager's and never a reason to refuse a start.
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'

/** The instance id: every host resource of a manager is named after it (netns, veth, tables, RAM dir, QEMU marker). */
export const instanceOf = (storageRoot: string) => crypto.createHash('sha256').update(storageRoot).digest('hex').slice(0, 10)

/** `ss -xlp | grep run-dat-sheesh` shows each holder's pid. */
const markName = (instance: string) => `run-dat-sheesh/instance/${instance}`

export interface InstanceMark {
  release(): Promise<void>
}

export interface MarkHolder {
  pid: number
  uid: number
}

/** The mark of `instance`, or who holds it (undefined when that cannot be seen, or it just went). */
export type MarkAttempt = { mark: InstanceMark } | { heldBy: MarkHolder | undefined }

export async function tryHoldMark(instance: string): Promise<MarkAttempt> {
  // Nobody has anything to say to the mark: a connection is closed at once.
  const server = net.createServer((socket) => socket.destroy())
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(`\0${markName(instance)}`, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') return { heldBy: markHolder(instance) }
    throw err
  }
  // Held for as long as the process wants it, without keeping the process alive for it.
  server.unref()
  return { mark: { release: () => new Promise<void>((resolve) => server.close(() => resolve())) } }
}

/** The process with the mark's socket open: its inode from /proc/net/unix, then whose fd it is. */
function markHolder(instance: string): MarkHolder | undefined {
  const path = `@${markName(instance)}`
  const inodes = new Set(
    fs
      .readFileSync('/proc/net/unix', 'utf8')
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[7] === path)
      .map((f) => `socket:[${f[6]}]`),
  )
  if (inodes.size === 0) return undefined
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (!fs.readdirSync(`/proc/${pid}/fd`).some((fd) => inodes.has(fdTarget(pid, fd)))) continue
      const uid = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
      return { pid: Number(pid), uid: Number(uid) }
    } catch {
      // exited meanwhile, or not ours to read
    }
  }
  return undefined
}

function fdTarget(pid: string, fd: string): string {
  try {
    return fs.readlinkSync(`/proc/${pid}/fd/${fd}`)
  } catch {
    return ''
  }
}
