// The VM state stream a VMM writes for a snapshot is capped in bytes (guest RAM + device state):
// a VMM that sends more is cut off, its migration cancelled, and no state file is left. A live
// save that does not converge within its budget stops the guest itself.
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { EventEmitter } from 'node:events'
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
    await saveState(qmp, { path: path.join(dir, 'mig.sock'), inVmm: path.join(dir, 'mig.sock') }, file, { withoutRam: true, timeoutMs: 10_000, maxBytes: 4 * 1024 * 1024 })
    expect(fs.statSync(file).size).toBe(3 * 1024 * 1024)
    expect(fs.existsSync(path.join(dir, 'mig.sock'))).toBe(false)
  })

  it('cuts a stream past the cap, cancels the migration and leaves no file', async () => {
    const dir = tmp()
    const { qmp, commands } = fakeQmp(64 * 1024 * 1024)
    const file = path.join(dir, 'state.bin')
    const err = await saveState(qmp, { path: path.join(dir, 'mig.sock'), inVmm: path.join(dir, 'mig.sock') }, file, { withoutRam: true, timeoutMs: 10_000, maxBytes: 4 * 1024 * 1024 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(VmmError)
    expect((err as VmmError).kind).toBe('state_too_large')
    expect((err as VmmError).details).toEqual({ maxBytes: 4 * 1024 * 1024 })
    expect(commands).toContain('migrate_cancel')
    expect(fs.readdirSync(dir)).toEqual([])
  })
})

/**
 * A stand-in for a live migration: the stream stays open and `ram.transferred` grows until the
 * guest is stopped (a guest dirtying memory faster than it is sent), then QEMU's STOP event and
 * completion follow. `convergeAfterPolls` makes QEMU stop the guest by itself instead.
 */
function liveQmp(o: { convergeAfterPolls?: number } = {}) {
  const commands: Array<{ command: string; args?: Record<string, unknown> }> = []
  const events = new EventEmitter()
  let sock: net.Socket | undefined
  let transferred = 0
  let polls = 0
  let state: 'active' | 'completed' = 'active'
  const stopAt = Date.UTC(2026, 0, 1)
  const finish = () => {
    events.emit('event', { event: 'STOP', timestamp: { seconds: Math.floor(stopAt / 1000), microseconds: 250_000 } })
    sock!.end(() => (state = 'completed'))
  }
  const qmp = Object.assign(events, {
    async execute(command: string, args?: Record<string, unknown>) {
      commands.push({ command, args })
      if (command === 'migrate') {
        sock = net.connect(String(args!.uri).replace(/^unix:/, ''))
        sock.on('error', () => undefined)
      }
      if (command === 'stop') finish()
      if (command === 'query-migrate') {
        polls++
        if (state === 'active') {
          transferred += 1024 * 1024
          sock?.write(Buffer.alloc(1024, 1))
          if (o.convergeAfterPolls !== undefined && polls === o.convergeAfterPolls) finish()
        }
        return { status: state, ram: { transferred } }
      }
      return {}
    },
  })
  return { qmp: qmp as unknown as QmpClient, commands, stopAt }
}

describe('live save', () => {
  const live = { downtimeMs: 50, budgetMs: 60_000, budgetBytes: 8 * 1024 * 1024 }

  it('stops a guest that does not converge once the live phase has sent its budget, and reports when it stopped', async () => {
    const dir = tmp()
    const { qmp, commands, stopAt } = liveQmp()
    const file = path.join(dir, 'state.bin')
    const r = await saveState(qmp, { path: path.join(dir, 'mig.sock'), inVmm: path.join(dir, 'mig.sock') }, file, { withoutRam: false, timeoutMs: 10_000, maxBytes: 64 * 1024 * 1024, live })
    expect(r).toEqual({ forcedStop: true, stoppedAt: stopAt + 250 })
    const names = commands.map((c) => c.command)
    expect(names.filter((c) => c === 'stop')).toHaveLength(1)
    // It was stopped only after the budget: 8 MiB at 1 MiB per poll.
    expect(names.filter((c) => c === 'query-migrate').length).toBeGreaterThan(8)
    expect(commands.find((c) => c.command === 'migrate-set-parameters')!.args).toMatchObject({ 'downtime-limit': 50 })
    expect(fs.existsSync(file)).toBe(true)
  })

  it('past its time budget allows QEMU a longer pause, then stops the guest itself at twice the budget', async () => {
    const dir = tmp()
    const { qmp, commands } = liveQmp()
    const file = path.join(dir, 'state.bin')
    const r = await saveState(qmp, { path: path.join(dir, 'mig.sock'), inVmm: path.join(dir, 'mig.sock') }, file, { withoutRam: false, timeoutMs: 10_000, maxBytes: 1024 * 1024 * 1024, live: { downtimeMs: 50, budgetMs: 100, budgetBytes: 1024 * 1024 * 1024 } })
    expect(r.forcedStop).toBe(true)
    const limits = commands.filter((c) => c.command === 'migrate-set-parameters').map((c) => c.args!['downtime-limit'])
    expect(limits).toEqual([50, 100])
    expect(commands.findIndex((c) => c.command === 'stop')).toBeGreaterThan(commands.findLastIndex((c) => c.command === 'migrate-set-parameters'))
  })

  it('leaves a guest that converges to QEMU: no stop from the manager', async () => {
    const dir = tmp()
    const { qmp, commands } = liveQmp({ convergeAfterPolls: 3 })
    const file = path.join(dir, 'state.bin')
    const r = await saveState(qmp, { path: path.join(dir, 'mig.sock'), inVmm: path.join(dir, 'mig.sock') }, file, { withoutRam: false, timeoutMs: 10_000, maxBytes: 64 * 1024 * 1024, live })
    expect(r.forcedStop).toBe(false)
    expect(r.stoppedAt).toBeDefined()
    expect(commands.map((c) => c.command)).not.toContain('stop')
    // Unthrottled: the guest waits for every byte of the final part.
    expect(commands.find((c) => c.command === 'migrate-set-parameters')!.args!['max-bandwidth']).toBeGreaterThan(1e9)
  })
})
