// The VM state stream a VMM writes for a snapshot is capped in bytes (guest RAM + device state):
// a VMM that sends more is cut off, its migration cancelled, and no state file is left.
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { saveState } from '../../src/runtime/vmm/qemu/migration.ts'
import type { QmpClient } from '../../src/runtime/vmm/qemu/qmp.ts'
import { VmmError } from '../../src/runtime/vmm/vmm-error.ts'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

/** A stand-in for QEMU's QMP: on `migrate` it connects to the URI and sends `bytes` bytes, then reports completion. */
function fakeQmp(bytes: number) {
  const commands: string[] = []
  let done = false
  const qmp = {
    async execute(command: string, args?: { uri?: string }) {
      commands.push(command)
      if (command === 'migrate') {
        const sock = net.connect(args!.uri!.replace(/^unix:/, ''))
        sock.on('error', () => undefined)
        const chunk = Buffer.alloc(64 * 1024, 7)
        let left = bytes
        const pump = () => {
          while (left > 0) {
            const n = Math.min(left, chunk.length)
            left -= n
            if (!sock.write(chunk.subarray(0, n))) return void sock.once('drain', pump)
          }
          sock.end(() => (done = true))
        }
        sock.once('connect', pump)
      }
      if (command === 'query-migrate') return { status: done ? 'completed' : 'active' }
      return {}
    },
  }
  return { qmp: qmp as unknown as QmpClient, commands }
}

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-state-cap-'))
  dirs.push(d)
  return d
}

describe('state stream cap', () => {
  it('keeps a stream within the cap whole', async () => {
    const dir = tmp()
    const { qmp } = fakeQmp(3 * 1024 * 1024)
    const file = path.join(dir, 'state.bin')
    await saveState(qmp, { path: path.join(dir, 'mig.sock'), inVmm: path.join(dir, 'mig.sock') }, file, true, 10_000, 4 * 1024 * 1024)
    expect(fs.statSync(file).size).toBe(3 * 1024 * 1024)
    expect(fs.existsSync(path.join(dir, 'mig.sock'))).toBe(false)
  })

  it('cuts a stream past the cap, cancels the migration and leaves no file', async () => {
    const dir = tmp()
    const { qmp, commands } = fakeQmp(64 * 1024 * 1024)
    const file = path.join(dir, 'state.bin')
    const err = await saveState(qmp, { path: path.join(dir, 'mig.sock'), inVmm: path.join(dir, 'mig.sock') }, file, true, 10_000, 4 * 1024 * 1024).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(VmmError)
    expect((err as VmmError).kind).toBe('state_too_large')
    expect((err as VmmError).details).toEqual({ maxBytes: 4 * 1024 * 1024 })
    expect(commands).toContain('migrate_cancel')
    expect(fs.readdirSync(dir)).toEqual([])
  })
})
