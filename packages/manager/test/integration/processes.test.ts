// Background processes, terminals and the WebSocket attach on a real VM through the shared
// manager (one VM for the whole file): the agent owns the processes, the manager relays.
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import type { ManagerClient } from '../harness/manager-process.ts'
import { sharedManager } from '../harness/shared-manager.ts'

interface Event {
  type: string
  data?: string
  dataBase64?: string
  offset?: number
  skipped?: number
  exitCode?: number
  timedOut?: boolean
  code?: string
}

let api: ManagerClient
let vmId: string

const bytesOf = (e: Event) => (e.dataBase64 !== undefined ? Buffer.from(e.dataBase64, 'base64') : Buffer.from(e.data ?? ''))
const textOf = (events: Event[], stream = 'stdout') => Buffer.concat(events.filter((e) => e.type === stream).map(bytesOf)).toString()
const exitOf = (events: Event[]) => events.find((e) => e.type === 'exit')

async function start(body: object): Promise<number> {
  const r = await api.request('POST', `/v1/vms/${vmId}/processes`, body)
  expect(r.status, JSON.stringify(r.body)).toBe(201)
  expect(r.body).toMatchObject({ state: 'running', startedAt: expect.any(String) })
  return r.body.pid
}

async function output(pid: number, query = ''): Promise<Event[]> {
  const r = await api.fetch(`/v1/vms/${vmId}/processes/${pid}/output${query}`, { headers: { 'x-api-key': api.apiKey } })
  expect(r.status).toBe(200)
  expect(r.headers.get('content-type')).toContain('application/x-ndjson')
  return (await r.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l))
}

/** Polls the kept output (follow=false) until its stdout matches. */
const outputUntil = (pid: number, pattern: RegExp) =>
  api.waitFor(`output of ${pid} to match ${pattern}`, async () => {
    const t = textOf(await output(pid))
    return pattern.test(t) ? t : undefined
  }, 120_000)

const stdin = (pid: number, body: string, eof = false) =>
  api.fetch(`/v1/vms/${vmId}/processes/${pid}/stdin${eof ? '?eof=true' : ''}`, { method: 'POST', headers: { 'x-api-key': api.apiKey, 'content-type': 'application/octet-stream' }, body })

beforeAll(async () => {
  api = await sharedManager()
  const r = await api.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [] })
  if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}`)
  vmId = r.body.id
})

afterAll(async () => {
  if (vmId) await api.request('DELETE', `/v1/vms/${vmId}`)
})

describe('background processes', () => {
  it('starts, lists and gets a process; its output replays with offsets and ends with the exit', async () => {
    const pid = await start({ cmd: 'echo one; echo two >&2; echo three; exit 4', tag: 'demo' })
    const events = await output(pid, '?follow=true')
    expect(textOf(events)).toBe('one\nthree\n')
    expect(textOf(events, 'stderr')).toBe('two\n')
    expect(events.filter((e) => e.type === 'stdout')[0]!.offset).toBe(0)
    expect(exitOf(events)).toMatchObject({ exitCode: 4, timedOut: false })
    const got = await api.request('GET', `/v1/vms/${vmId}/processes/${pid}`)
    expect(got.body).toMatchObject({ pid, tag: 'demo', state: 'exited', exitCode: 4, endedAt: expect.any(String) })
    const list = await api.request('GET', `/v1/vms/${vmId}/processes`)
    expect(list.body.map((p: { pid: number }) => p.pid)).toContain(pid)
    expect((await api.request('GET', `/v1/vms/${vmId}/processes/999999`)).body.code).toBe('process_not_found')
  })

  it('runs args without a shell', async () => {
    const pid = await start({ args: ['printf', '[%s]', 'a b', '$HOME', "it's"] })
    expect(textOf(await output(pid, '?follow=true'))).toBe("[a b][$HOME][it's]")
  })

  it('a client that dropped reconnects with since and loses nothing; follow=false ends', async () => {
    const pid = await start({ cmd: 'for i in $(seq 1 40); do echo line-$i; sleep 0.05; done' })
    // A follower that leaves after its first bytes.
    const ac = new AbortController()
    const r = await api.fetch(`/v1/vms/${vmId}/processes/${pid}/output?follow=true`, { headers: { 'x-api-key': api.apiKey }, signal: ac.signal })
    const reader = r.body!.getReader()
    const first = JSON.parse(Buffer.from((await reader.read()).value!).toString().split('\n')[0]!) as Event
    ac.abort()
    const resumeAt = first.offset! + bytesOf(first).length
    const rest = await output(pid, `?since=${resumeAt}&follow=true`)
    expect(bytesOf(first).toString() + textOf(rest)).toBe(Array.from({ length: 40 }, (_, i) => `line-${i + 1}\n`).join(''))
    expect(exitOf(rest)?.exitCode).toBe(0)
    // follow=false: what is kept, and the end.
    const kept = await output(pid)
    expect(textOf(kept)).toContain('line-40')
  })

  it('followers that leave a silent process free their agent stream at once', async () => {
    const pid = await start({ cmd: 'sleep 300' })
    for (let i = 0; i < 20; i++) {
      const ac = new AbortController()
      const r = await api.fetch(`/v1/vms/${vmId}/processes/${pid}/output?follow=true`, { headers: { 'x-api-key': api.apiKey }, signal: ac.signal })
      expect(r.status).toBe(200)
      ac.abort()
    }
    // Every one of them let go of its agent stream, although the process never wrote a byte.
    await api.waitFor('no readers left', async () => ((await api.request('GET', `/v1/vms/${vmId}/processes/${pid}`)).body.readers === 0 ? true : undefined), 60_000)
    await api.fetch(`/v1/vms/${vmId}/processes/${pid}`, { method: 'DELETE', headers: { 'x-api-key': api.apiKey } })
  })

  it('writes stdin to an interactive program; eof closes it', async () => {
    const pid = await start({ cmd: 'read line; echo got:$line; cat; echo cat-ended', stdin: true })
    expect((await stdin(pid, 'hello\n')).status).toBe(204)
    await outputUntil(pid, /got:hello/)
    expect((await stdin(pid, 'more\n', true)).status).toBe(204)
    const events = await output(pid, '?follow=true')
    expect(textOf(events)).toBe('got:hello\nmore\ncat-ended\n')
    expect(exitOf(events)?.exitCode).toBe(0)
    const closed = await stdin(pid, 'x')
    expect(closed.status).toBe(409)
  })

  it('delivers signals: a bash trap reports SIGINT and SIGTERM; SIGKILL ends with 137', async () => {
    const pid = await start({ cmd: 'trap "echo got-INT" INT; trap "echo got-TERM; exit 5" TERM; echo ready; while true; do sleep 0.2; done' })
    await outputUntil(pid, /ready/)
    expect((await api.request('POST', `/v1/vms/${vmId}/processes/${pid}/signal`, { signal: 'SIGINT' })).status).toBe(204)
    await outputUntil(pid, /got-INT/)
    await api.request('POST', `/v1/vms/${vmId}/processes/${pid}/signal`, { signal: 'SIGTERM' })
    const events = await output(pid, '?follow=true')
    expect(textOf(events)).toContain('got-TERM')
    expect(exitOf(events)?.exitCode).toBe(5)
    expect((await api.request('POST', `/v1/vms/${vmId}/processes/${pid}/signal`, { signal: 'SIGSEGV' })).status).toBe(400)
    const sleeper = await start({ cmd: 'sleep 300' })
    await api.request('POST', `/v1/vms/${vmId}/processes/${sleeper}/signal`, { signal: 'SIGKILL' })
    expect(exitOf(await output(sleeper, '?follow=true'))?.exitCode).toBe(137)
  })

  it('DELETE kills the group, children included; timeoutMs ends a process', async () => {
    const pid = await start({ cmd: 'sleep 300 & echo child:$!; wait' })
    const child = (await outputUntil(pid, /child:\d+/)).match(/child:(\d+)/)![1]
    const del = await api.fetch(`/v1/vms/${vmId}/processes/${pid}`, { method: 'DELETE', headers: { 'x-api-key': api.apiKey } })
    expect(del.status).toBe(204)
    expect(exitOf(await output(pid, '?follow=true'))?.exitCode).toBe(137)
    const alive = await api.exec(vmId, `kill -0 ${child} 2>/dev/null && echo alive || echo gone`)
    expect(alive.stdout.trim()).toBe('gone')
    const timed = await start({ cmd: 'sleep 300', timeoutMs: 1000 })
    expect(exitOf(await output(timed, '?follow=true'))).toMatchObject({ exitCode: -1, timedOut: true })
  })

  it('runs many processes at once', async () => {
    const pids = await Promise.all(Array.from({ length: 12 }, (_, i) => start({ cmd: `echo n-${i}`, tag: `many-${i}` })))
    const outs = await Promise.all(pids.map((pid) => output(pid, '?follow=true')))
    outs.forEach((events, i) => expect(textOf(events)).toBe(`n-${i}\n`))
  })
})

describe('terminals', () => {
  it('gives a pty: tty, TERM, stty size before and after a resize', async () => {
    const pid = await start({ cmd: 'tty; echo TERM=$TERM; stty size; read x; stty size', pty: { cols: 80, rows: 24 } })
    const before = await outputUntil(pid, /24 80/)
    expect(before).toMatch(/\/dev\/pts\/\d+/)
    expect(before).toContain('TERM=xterm-256color')
    const ws = await attach(pid)
    ws.send(JSON.stringify({ type: 'resize', cols: 120, rows: 40 }))
    ws.send(Buffer.from('\n'))
    await ws.until(/40 120/)
    expect(await ws.exit).toBe(0)
  })

  it('Ctrl-C interrupts sleep in an interactive bash', async () => {
    const pid = await start({ cmd: 'bash --norc -i', pty: { cols: 80, rows: 24 } })
    const ws = await attach(pid)
    // The terminal echoes what is typed: markers are computed, so only their output can match.
    ws.send(Buffer.from('echo ready-$((2*3))\n'))
    await ws.until(/ready-6/)
    ws.send(Buffer.from('sleep 100; echo after-$((6*7))\n'))
    await sleep(1000)
    ws.send(Buffer.from('\x03'))
    ws.send(Buffer.from('echo interrupted-$?\n'))
    const seen = await ws.until(/interrupted-130/)
    expect(seen).not.toContain('after-42')
    ws.send(Buffer.from('exit 7\n'))
    expect(await ws.exit).toBe(7)
  })
})

describe('WebSocket attach', () => {
  it('with the API key header: output out, stdin in, exit before the close', async () => {
    const pid = await start({ cmd: 'echo hi; read x; echo got-$x', stdin: true })
    const ws = await attach(pid)
    await ws.until(/hi\n/)
    ws.send(Buffer.from('ws\n'))
    await ws.until(/got-ws/)
    expect(await ws.exit).toBe(0)
  })

  it('with a ticket, which works once, for that process only; without either it is refused', async () => {
    const pid = await start({ cmd: 'echo ticketed; sleep 300' })
    const other = await start({ cmd: 'sleep 300' })
    const t = await api.request('POST', `/v1/vms/${vmId}/processes/${pid}/attach-ticket`)
    expect(t.status).toBe(200)
    const ws = await attach(pid, { ticket: t.body.ticket })
    await ws.until(/ticketed/)
    ws.close()
    await expect(attach(pid, { ticket: t.body.ticket })).rejects.toThrow(/401/)
    const t2 = await api.request('POST', `/v1/vms/${vmId}/processes/${pid}/attach-ticket`)
    await expect(attach(other, { ticket: t2.body.ticket })).rejects.toThrow(/401/)
    await expect(attach(pid, { noKey: true })).rejects.toThrow(/401/)
    for (const p of [pid, other]) await api.fetch(`/v1/vms/${vmId}/processes/${p}`, { method: 'DELETE', headers: { 'x-api-key': api.apiKey } })
  })
})

interface Attached {
  send(data: string | Buffer): void
  close(): void
  /** Resolves with everything received so far once it matches. */
  until(pattern: RegExp): Promise<string>
  exit: Promise<number>
}

/** A real `ws` client on the attach route; rejects with the HTTP status when the upgrade is refused. */
function attach(pid: number, o: { ticket?: string; noKey?: boolean } = {}): Promise<Attached> {
  const url = `ws://127.0.0.1:${api.port}/v1/vms/${vmId}/processes/${pid}/attach${o.ticket ? `?ticket=${encodeURIComponent(o.ticket)}` : ''}`
  const ws = new WebSocket(url, { headers: o.ticket || o.noKey ? {} : { 'x-api-key': api.apiKey } })
  let received = ''
  const waiters: (() => void)[] = []
  const exit = new Promise<number>((resolve, reject) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        received += data.toString()
        for (const w of waiters.splice(0)) w()
        return
      }
      const msg = JSON.parse(data.toString())
      if (msg.type === 'exit') resolve(msg.exitCode)
    })
    ws.on('close', () => reject(new Error('closed without exit')))
  })
  exit.catch(() => {})
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => reject(new Error(`attach refused: ${res.statusCode}`)))
    ws.once('error', reject)
    ws.once('open', () =>
      resolve({
        send: (d) => ws.send(d),
        close: () => ws.close(),
        exit,
        until: async (pattern) => {
          const deadline = Date.now() + 90_000
          while (!pattern.test(received)) {
            if (ws.readyState !== ws.OPEN || Date.now() > deadline) throw new Error(`no ${pattern} (open: ${ws.readyState === ws.OPEN}): ${JSON.stringify(received)}`)
            await new Promise<void>((r) => {
              waiters.push(r)
              setTimeout(r, 1000)
            })
          }
          return received
        },
      }),
    )
  })
}
