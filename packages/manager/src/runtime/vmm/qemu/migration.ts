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
const ESCALATE_EVERY_MS = 500
/** QEMU's ceiling for downtime-limit is 2000 s; past a few seconds a stop is as good. */
const MAX_DOWNTIME_MS = 4000

/** RAM kept in a shared memory file is skipped by the stream (it is copied as a file instead). */
async function setIgnoreShared(qmp: QmpClient, on: boolean): Promise<void> {
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: on }] })
}

/** As good as unlimited: the stream goes to a local socket, and the guest waits for every byte of its final part. */
const UNTHROTTLED = 1e12

/**
 * Live precopy: the guest keeps running while QEMU sends its RAM, re-sends the pages it dirtied, and
 * stops it only for the last few pages and the device state (the pause QEMU aims for is
 * `downtimeMs`). A guest that dirties memory faster than the stream drains (a busy guest shares its
 * VMM's CPU quota with the sending thread) does not converge: after `budgetMs` the allowed pause is
 * doubled every ESCALATE_EVERY_MS, so QEMU stops it at the smallest dirty set it still finds;
 * after twice `budgetMs`, or once the live phase has sent `budgetBytes`, the manager stops it (the
 * stream then ends as a stopped one). Neither the time nor the size of a live stream is unbounded.
 */
export interface LivePrecopy {
  downtimeMs: number
  budgetMs: number
  budgetBytes: number
}

export interface SaveOptions {
  /** RAM in a shared memory file is left out of the stream (copied as a file instead). */
  withoutRam: boolean
  timeoutMs: number
  /** The cap of the saved stream. */
  maxBytes: number
  /** Absent: the guest must already be stopped. */
  live?: LivePrecopy
}

export interface SaveResult {
  /** When the guest stopped (epoch ms, QEMU's STOP event), for a live save that stopped it. */
  stoppedAt?: number
  /** The manager had to stop the guest because the live phase would not converge within its budget. */
  forcedStop: boolean
}

interface MigrateInfo {
  status?: string
  'error-desc'?: string
  ram?: { transferred?: number }
}

/**
 * Writes the guest's state to `file` through a socket at `socket.path` and waits until the stream
 * is complete and on disk; with `live`, QEMU stops the guest by itself for the final part (it
 * stays stopped, run state `postmigrate`, until the caller's `cont`). A stream over `maxBytes` is
 * cut, cancelled and its file removed (VmmError 'state_too_large'); on any failure no file is left.
 */
export async function saveState(qmp: QmpClient, socket: MigrationSocket, file: string, o: SaveOptions): Promise<SaveResult> {
  await setIgnoreShared(qmp, o.withoutRam)
  await qmp.execute('migrate-set-parameters', { 'max-bandwidth': UNTHROTTLED, ...(o.live ? { 'downtime-limit': o.live.downtimeMs } : {}) })
  const socketPath = socket.path
  fs.rmSync(socketPath, { force: true })
  const server = net.createServer()
  let failed: unknown
  // One connection, QEMU's: its bytes go to the file; a second one is nobody we expect.
  const written = new Promise<void>((resolve, reject) => {
    server.once('connection', (sock) => {
      server.on('connection', (other) => other.destroy())
      pipeline(sock, byteCap(o.maxBytes), fs.createWriteStream(file, { mode: 0o600 })).then(resolve, reject)
    })
  })
  written.catch((err: unknown) => (failed = err))
  // QEMU says when it stopped the guest; the pause is measured from there, not from when a poll noticed.
  const result: SaveResult = { forcedStop: false }
  const onEvent = (e: { event?: string; timestamp?: { seconds: number; microseconds: number } }) => {
    if (e.event === 'STOP' && result.stoppedAt === undefined) result.stoppedAt = e.timestamp ? e.timestamp.seconds * 1000 + e.timestamp.microseconds / 1000 : Date.now()
  }
  if (o.live) qmp.on('event', onEvent)
  await new Promise<void>((resolve, reject) => server.listen(socketPath, resolve).once('error', reject))
  try {
    if (socket.owner) fs.chownSync(socketPath, socket.owner.uid, socket.owner.gid)
    await qmp.execute('migrate', { uri: `unix:${socket.inVmm}` })
    const started = Date.now()
    const deadline = started + o.timeoutMs
    let downtime = o.live?.downtimeMs ?? 0
    let escalateAt = started + (o.live?.budgetMs ?? 0)
    for (;;) {
      if (failed !== undefined) {
        await qmp.execute('migrate_cancel').catch(() => undefined)
        throw failed
      }
      const r = (await qmp.execute('query-migrate')) as MigrateInfo
      if (r.status === 'completed') break
      if (r.status === 'failed' || r.status === 'cancelled') throw new Error(`saving VM state failed: ${r['error-desc'] ?? r.status}`)
      if (Date.now() > deadline) {
        await qmp.execute('migrate_cancel').catch(() => undefined)
        throw new Error(`saving VM state timed out after ${o.timeoutMs} ms`)
      }
      if (o.live && !result.forcedStop && r.status === 'active') {
        const now = Date.now()
        if (now - started > 2 * o.live.budgetMs || (r.ram?.transferred ?? 0) > o.live.budgetBytes) {
          // Not converging: a stopped guest dirties nothing, so what is left is sent once and the stream ends.
          result.forcedStop = true
          await qmp.execute('stop')
        } else if (now >= escalateAt && downtime < MAX_DOWNTIME_MS) {
          downtime = Math.min(MAX_DOWNTIME_MS, downtime * 2)
          escalateAt = now + ESCALATE_EVERY_MS
          await qmp.execute('migrate-set-parameters', { 'downtime-limit': downtime })
        }
      }
      await sleep(POLL_MS)
    }
    // Completed on QEMU's side: it has closed the stream; the file is whole once the pipe drains.
    await written
    return result
  } catch (err) {
    fs.rmSync(file, { force: true })
    throw err
  } finally {
    if (o.live) qmp.off('event', onEvent)
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
