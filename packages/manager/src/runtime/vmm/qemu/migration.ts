// Device (and possibly RAM) state in and out of QEMU through its migration stream. QEMU 7.2
// has no `file:` transport, so the stream goes through `exec:cat`; the path is quoted and
// must not contain a quote (it is built by runtime/storage/paths.ts from validated ids).
import { setTimeout as sleep } from 'node:timers/promises'
import type { QmpClient } from './qmp.ts'

const POLL_MS = 5

function shellPath(file: string): string {
  if (/['\n\0]/.test(file)) throw new Error(`unsafe path for the migration stream: ${JSON.stringify(file)}`)
  return `'${file}'`
}

/** RAM kept in a shared memory file is skipped by the stream (it is copied as a file instead). */
async function setIgnoreShared(qmp: QmpClient, on: boolean): Promise<void> {
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: on }] })
}

/** Writes the state of a stopped guest to `file` and waits until the stream is complete. */
export async function saveState(qmp: QmpClient, file: string, withoutRam: boolean, timeoutMs: number): Promise<void> {
  await setIgnoreShared(qmp, withoutRam)
  await qmp.execute('migrate', { uri: `exec:cat > ${shellPath(file)}` })
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const r = (await qmp.execute('query-migrate')) as { status?: string; 'error-desc'?: string }
    if (r.status === 'completed') return
    if (r.status === 'failed' || r.status === 'cancelled') throw new Error(`saving VM state failed: ${r['error-desc'] ?? r.status}`)
    if (Date.now() > deadline) {
      await qmp.execute('migrate_cancel').catch(() => undefined)
      throw new Error(`saving VM state timed out after ${timeoutMs} ms`)
    }
    await sleep(POLL_MS)
  }
}

/** Feeds `file` to a QEMU started with `-incoming defer`; resolves once the guest is loaded (paused). */
export async function loadState(qmp: QmpClient, file: string, withoutRam: boolean, timeoutMs: number): Promise<void> {
  await setIgnoreShared(qmp, withoutRam)
  await qmp.execute('migrate-incoming', { uri: `exec:cat ${shellPath(file)}` })
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const r = (await qmp.execute('query-status')) as { status?: string }
    if (r.status !== 'inmigrate') {
      if (r.status === 'paused' || r.status === 'prelaunch' || r.status === 'running') return
      throw new Error(`loading VM state failed (QEMU status ${r.status})`)
    }
    if (Date.now() > deadline) throw new Error(`loading VM state timed out after ${timeoutMs} ms`)
    await sleep(POLL_MS)
  }
}
