// The channel from the run wrapper back to the agent: a FIFO created in the root-owned run dir,
// opened at both ends by the agent and unlinked before the user's code starts, then handed to
// the child as fd 3. Nothing is ever read from a path the user could replace.
//
// Why a FIFO and not the socketpair Node's spawn() would make: Deno can only write to an
// inherited descriptor by reopening /proc/self/fd/3, which the kernel refuses for sockets (ENXIO), and
// for a pipe only lets through if the user may open the pipe's inode. So the FIFO is owned by
// the run's uid; that changes nothing for other users, since its name is gone before user code
// runs.
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { makeFifo } from './fifo.ts'

export interface ResultPipe {
  /** Agent's read end. */
  reader: net.Socket
  /** Child's write end; close it in the agent once the child is spawned. */
  writeFd: number
}

export async function createResultPipe(dir: string, uid: number, gid: number, mkfifo: string): Promise<ResultPipe> {
  const fifo = path.join(dir, 'result.fifo')
  await makeFifo(mkfifo, fifo, '0600')
  try {
    fs.lchownSync(fifo, uid, gid)
    const readFd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
    // A reader exists, so this open does not block.
    const writeFd = fs.openSync(fifo, fs.constants.O_WRONLY)
    return { reader: new net.Socket({ fd: readFd, readable: true, writable: false }), writeFd }
  } finally {
    fs.rmSync(fifo, { force: true })
  }
}
