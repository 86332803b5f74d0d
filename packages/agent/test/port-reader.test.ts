// The control port's reader (guest/init/rds-portpipe.c, built for the host here) and the stream
// the agent makes of it and the port. The "port" is a socket pair whose other end the test holds
// as the host; a real port's "no host yet" EOF and 4 KiB reads are exercised by every VM test.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import type net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { PassThrough } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SplitPort } from '../src/transport/port-reader.ts'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const readerSrc = path.join(repo, 'guest/init/rds-portpipe.c')
const hasCc = spawnSync('gcc', ['--version']).status === 0

let dir: string
let reader: string

interface Session {
  child: ChildProcess
  /** The host's end of the port. */
  host: net.Socket
  /** What the reader handed the agent, chunk by chunk, and how it exited. */
  done: Promise<{ chunks: Buffer[]; code: number | null; signal: NodeJS.Signals | null; stderr: string }>
}

function startReader(): Session {
  const child = spawn(reader, [], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] })
  const chunks: Buffer[] = []
  child.stdout!.on('data', (c: Buffer) => chunks.push(c))
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')))
  const done = new Promise<{ chunks: Buffer[]; code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.once('close', (code, signal) => resolve({ chunks, code, signal, stderr })),
  )
  return { child, host: child.stdio[3] as net.Socket, done }
}

const written = (sock: net.Socket, data: Buffer): Promise<void> => new Promise((resolve, reject) => sock.write(data, (e) => (e ? reject(e) : resolve())))

describe.skipIf(!hasCc)('the control port reader (rds-portpipe)', { timeout: 30_000 }, () => {
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-portpipe-'))
    reader = path.join(dir, 'rds-portpipe')
    const cc = spawnSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', reader, readerSrc], { encoding: 'utf8' })
    if (cc.status !== 0) throw new Error(cc.stderr)
  })
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('hands on every byte the host sends, in order, and exits 0 when the host leaves', async () => {
    const s = startReader()
    const data = crypto.randomBytes(4 * 1024 * 1024 + 123)
    // In page-sized writes, as the guest kernel hands the port over.
    for (let off = 0; off < data.length; off += 4096) s.host.write(data.subarray(off, off + 4096))
    s.host.end()
    const r = await s.done
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(Buffer.concat(r.chunks).equals(data)).toBe(true)
  })

  it('gathers what the port holds into one write instead of one per page', async () => {
    const s = startReader()
    // Stopped while the host sends 25 pages; the reader finds all of them waiting when it runs.
    s.child.kill('SIGSTOP')
    const data = crypto.randomBytes(25 * 4096)
    for (let off = 0; off < data.length; off += 4096) await written(s.host, data.subarray(off, off + 4096))
    s.child.kill('SIGCONT')
    let n = 0
    await new Promise<void>((resolve) => s.child.stdout!.on('data', (c: Buffer) => (n += c.length) === data.length && resolve()))
    // A socket joins writes, so the agent's chunks cannot tell: the reader's own count can. The
    // socket may take the 100 KiB in two parts; one write per page would be 25.
    const writes = Number(/^syscw: (\d+)$/m.exec(fs.readFileSync(`/proc/${s.child.pid}/io`, 'utf8'))![1])
    expect(writes).toBeLessThanOrEqual(3)
    s.host.end()
    const r = await s.done
    expect(Buffer.concat(r.chunks).equals(data)).toBe(true)
  })

  it('exits 0 when the agent closes its side, with the host still there', async () => {
    const s = startReader()
    s.host.write('hello')
    await new Promise<void>((resolve) => s.child.stdout!.once('data', () => resolve()))
    s.child.stdout!.destroy()
    const r = await s.done
    expect(r.code).toBe(0)
    s.host.destroy()
  })

  it('dies with the process that started it, so no reader outlives the agent', async () => {
    // The reader waits for a host on /dev/null (reads return 0, as a port's do with no host).
    const sh = spawnSync('sh', ['-c', `"$0" 3</dev/null >/dev/null 2>&1 & echo $!; sleep 0.3`, reader], { encoding: 'utf8' })
    const pid = Number(sh.stdout.trim())
    expect(pid).toBeGreaterThan(1)
    const gone = async (): Promise<boolean> => {
      for (let i = 0; i < 200; i++) {
        try {
          process.kill(pid, 0)
        } catch {
          return true
        }
        await new Promise((r) => setTimeout(r, 50))
      }
      return false
    }
    const died = await gone()
    if (!died) process.kill(pid, 'SIGKILL')
    expect(died).toBe(true)
  })
})

describe('the agent-side stream over the reader and the port', () => {
  it('reads what the reader hands on and writes to the port, several writes at once in order', async () => {
    const rx = new PassThrough()
    const tx = new PassThrough()
    const split = new SplitPort(rx, tx)
    const got: Buffer[] = []
    split.on('data', (c: Buffer) => got.push(c))
    rx.write('from the host')
    split.cork()
    split.write('a')
    split.write('b')
    split.write('c')
    split.uncork()
    await new Promise((r) => setImmediate(r))
    expect(Buffer.concat(got).toString()).toBe('from the host')
    expect(tx.read()?.toString()).toBe('abc')
  })

  it('never ends the port on a graceful close (it cannot be shut down) and closes both sides when destroyed', async () => {
    const rx = new PassThrough()
    const tx = new PassThrough()
    let txEnded = false
    tx.on('finish', () => (txEnded = true))
    const split = new SplitPort(rx, tx)
    split.resume()
    await new Promise<void>((resolve) => split.end(resolve))
    expect(txEnded).toBe(false)
    split.destroy()
    await new Promise((r) => setImmediate(r))
    expect(rx.destroyed).toBe(true)
    expect(tx.destroyed).toBe(true)
  })

  it('ends when the reader does (the host left)', async () => {
    const rx = new PassThrough()
    const split = new SplitPort(rx, new PassThrough())
    split.resume()
    const ended = new Promise<void>((resolve) => split.once('end', () => resolve()))
    rx.end('last')
    await ended
  })

  it('stops taking from the reader while the agent does not read, and resumes when it does', async () => {
    const rx = new PassThrough({ highWaterMark: 16 })
    const split = new SplitPort(rx, new PassThrough())
    const big = Buffer.alloc(1024 * 1024, 1)
    rx.write(big)
    await new Promise((r) => setImmediate(r))
    // Nobody reads the split stream: the reader's side is paused, the bytes wait there.
    expect(rx.isPaused()).toBe(true)
    let n = 0
    split.on('data', (c: Buffer) => (n += c.length))
    await new Promise((r) => setImmediate(r))
    expect(n).toBe(big.length)
  })
})
