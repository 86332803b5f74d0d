// Device (and possibly RAM) state in and out of QEMU through its migration stream. QEMU 7.2 has
// no `file:` transport, and `exec:` makes QEMU spawn a shell, which its sandbox (spawn=deny)
// forbids on purpose: so the stream goes over a Unix socket in the VM's directory and the
// manager does the file I/O. Saving, the manager listens and QEMU connects (`migrate unix:`);
// loading, QEMU listens (`migrate-incoming unix:`) and the manager connects and sends the file.
//
// A saved stream is capped in bytes as well as time: what arrives is written by a VMM that may be
// compromised, and a stream past the guest's RAM plus device state is not a state at all.
import fs from 'node:fs'
import net from 'node:net'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { byteCap } from './byte-cap.ts'
import type { QmpClient } from './qmp.ts'

/** The stream's socket: where the manager binds or connects, and the same socket as the VMM names it (its root may differ). */
export interface MigrationSocket {
  path: string
  inVmm: string
  /** Saving, the VMM connects to the manager's socket: it must be able to write to it. */
  owner?: { uid: number; gid: number }
}

const POLL_MS = 5

/** RAM kept in a shared memory file is skipped by the stream (it is copied as a file instead). */
async function setIgnoreShared(qmp: QmpClient, on: boolean): Promise<void> {
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: on }] })
}

/**
 * Writes the state of a stopped guest to `file` through a socket at `socket.path` and waits until
 * the stream is complete and on disk. A stream over `maxBytes` is cut, cancelled and its file
 * removed (VmmError 'state_too_large'); on any failure no file is left.
 */
export async function saveState(qmp: QmpClient, socket: MigrationSocket, file: string, withoutRam: boolean, timeoutMs: number, maxBytes: number): Promise<void> {
  await setIgnoreShared(qmp, withoutRam)
  const socketPath = socket.path
  fs.rmSync(socketPath, { force: true })
  const server = net.createServer()
  let failed: unknown
  // One connection, QEMU's: its bytes go to the file; a second one is nobody we expect.
  const written = new Promise<void>((resolve, reject) => {
    server.once('connection', (sock) => {
      server.on('connection', (other) => other.destroy())
      pipeline(sock, byteCap(maxBytes), fs.createWriteStream(file, { mode: 0o600 })).then(resolve, reject)
    })
  })
  written.catch((err: unknown) => (failed = err))
  await new Promise<void>((resolve, reject) => server.listen(socketPath, resolve).once('error', reject))
  try {
    if (socket.owner) fs.chownSync(socketPath, socket.owner.uid, socket.owner.gid)
    await qmp.execute('migrate', { uri: `unix:${socket.inVmm}` })
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (failed !== undefined) {
        await qmp.execute('migrate_cancel').catch(() => undefined)
        throw failed
      }
      const r = (await qmp.execute('query-migrate')) as { status?: string; 'error-desc'?: string }
      if (r.status === 'completed') break
      if (r.status === 'failed' || r.status === 'cancelled') throw new Error(`saving VM state failed: ${r['error-desc'] ?? r.status}`)
      if (Date.now() > deadline) {
        await qmp.execute('migrate_cancel').catch(() => undefined)
        throw new Error(`saving VM state timed out after ${timeoutMs} ms`)
      }
      await sleep(POLL_MS)
    }
    // Completed on QEMU's side: it has closed the stream; the file is whole once the pipe drains.
    await written
  } catch (err) {
    fs.rmSync(file, { force: true })
    throw err
  } finally {
    server.close()
    fs.rmSync(socketPath, { force: true })
  }
}

/** Feeds `file` to a QEMU started with `-incoming defer`; resolves once the guest is loaded (paused). */
export async function loadState(qmp: QmpClient, socket: MigrationSocket, file: string, withoutRam: boolean, timeoutMs: number): Promise<void> {
  await setIgnoreShared(qmp, withoutRam)
  const socketPath = socket.path
  fs.rmSync(socketPath, { force: true })
  // QEMU is listening once the command returns.
  await qmp.execute('migrate-incoming', { uri: `unix:${socket.inVmm}` })
  const sock = net.connect(socketPath)
  const sent = pipeline(fs.createReadStream(file), sock)
  sent.catch(() => undefined)
  try {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const r = (await qmp.execute('query-status')) as { status?: string }
      if (r.status !== 'inmigrate') {
        if (r.status === 'paused' || r.status === 'prelaunch' || r.status === 'running') break
        throw new Error(`loading VM state failed (QEMU status ${r.status})`)
      }
      if (Date.now() > deadline) throw new Error(`loading VM state timed out after ${timeoutMs} ms`)
      await sleep(POLL_MS)
    }
  } finally {
    sock.destroy()
    fs.rmSync(socketPath, { force: true })
  }
}
