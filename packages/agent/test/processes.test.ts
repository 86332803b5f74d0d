// Background processes in the real agent on the host (test mode, as e2e.test.ts): start, list,
// output replay and follow with offsets, stdin and eof, signals, kill, timeout, the replay
// ring's bound, and a PTY through a host build of rds-exec. Needs root and gcc.
import fs from 'node:fs'
import http2 from 'node:http2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chunkBytes, MAX_EXITED_PROCESSES, MAX_RUNNING_PROCESSES, PROCESS_RING_BYTES, type OutputEvent } from '@rds/protocol'
import { json, request } from './helpers/agent-client.ts'
import { canRunHostAgent as canRun, startHostAgent, type HostAgent } from './helpers/host-agent.ts'


let host: HostAgent
let session: http2.ClientHttp2Session

async function start(body: object): Promise<number> {
  const r = await json(session, 'POST', '/processes/start', body)
  expect(r.status, JSON.stringify(r.body)).toBe(200)
  return r.body.pid
}

async function output(pid: number, query = ''): Promise<OutputEvent[]> {
  const r = await request(session, 'GET', `/processes/output?pid=${pid}${query}`)
  expect(r.status, r.body.toString()).toBe(200)
  return r.body.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l))
}

const text = (events: OutputEvent[], stream = 'stdout') => Buffer.concat(events.filter((e) => e.type === stream).map((e) => chunkBytes(e as never))).toString()
const exitOf = (events: OutputEvent[]) => events.find((e) => e.type === 'exit') as { exitCode: number; timedOut: boolean } | undefined

async function until<T>(what: string, fn: () => Promise<T | undefined>, tries = 200): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await fn()
    if (v !== undefined) return v
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`gave up waiting for ${what}\n${host?.log()}`)
}

const outputUntil = (pid: number, pattern: RegExp) => until(`output ${pattern}`, async () => {
  const t = text(await output(pid))
  return pattern.test(t) ? t : undefined
})

describe.skipIf(!canRun)('agent background processes (host, test mode)', () => {
  beforeAll(async () => {
    host = await startHostAgent({ prefix: 'rds-agent-procs-' })
    ;({ session } = host)
  }, 60_000)

  afterAll(async () => {
    // Whatever a failed test left running dies with its process group.
    const list = session ? await json(session, 'GET', '/processes/list').catch(() => undefined) : undefined
    for (const p of list?.body?.processes ?? []) if (p.state === 'running') await json(session, 'POST', '/processes/kill', { pid: p.pid })
    await host?.stop()
  }, 60_000)

  it('starts a process, lists it, and replays its output with offsets and the exit', async () => {
    const pid = await start({ cmd: 'echo one; echo two >&2; echo three', tag: 'web' })
    const events = await output(pid, '&follow=true')
    expect(text(events)).toBe('one\nthree\n')
    expect(text(events, 'stderr')).toBe('two\n')
    expect(exitOf(events)).toMatchObject({ exitCode: 0, timedOut: false })
    const chunks = events.filter((e) => e.type === 'stdout') as { offset: number; data: string }[]
    expect(chunks[0]!.offset).toBe(0)
    const list = await json(session, 'GET', '/processes/list')
    expect(list.body.processes).toContainEqual(expect.objectContaining({ pid, tag: 'web', state: 'exited', exitCode: 0, stdoutBytes: 10, stderrBytes: 4 }))
    // since: only what follows the offset, per stream.
    expect(text(await output(pid, '&since=4&stderrSince=4'))).toBe('three\n')
    expect(text(await output(pid, '&since=4&stderrSince=4'), 'stderr')).toBe('')
  })

  it('runs argv without a shell', async () => {
    const pid = await start({ args: ['printf', '%s|', 'a b', '$HOME', "it's"] })
    expect(text(await output(pid, '&follow=true'))).toBe("a b|$HOME|it's|")
  })

  it('follow=false ends at what is there; follow=true waits for more', async () => {
    const pid = await start({ cmd: 'echo first; read x; echo "got:$x"', stdin: true })
    const first = await outputUntil(pid, /first/)
    expect(first).toBe('first\n')
    const follow = output(pid, '&follow=true&since=6')
    const w = await request(session, 'POST', `/processes/stdin?pid=${pid}`, 'hello\n', 'application/octet-stream')
    expect(w.status).toBe(204)
    const rest = await follow
    expect(text(rest)).toBe('got:hello\n')
    expect(exitOf(rest)?.exitCode).toBe(0)
  })

  it('eof closes stdin', async () => {
    const pid = await start({ cmd: 'wc -c', stdin: true })
    await request(session, 'POST', `/processes/stdin?pid=${pid}&eof=true`, 'abcde', 'application/octet-stream')
    const events = await output(pid, '&follow=true')
    expect(text(events).trim()).toBe('5')
    // After eof the pipe is closed: more input is refused.
    const again = await json(session, 'POST', `/processes/get`, { pid })
    expect(again.body.state).toBe('exited')
    const refused = await request(session, 'POST', `/processes/stdin?pid=${pid}`, 'x', 'application/octet-stream')
    expect(refused.status).toBe(409)
  })

  it('delivers allow-listed signals to the group; SIGKILL ends it with 137', async () => {
    const pid = await start({ cmd: 'trap "echo got INT" INT; trap "echo got TERM; exit 3" TERM; echo ready; while true; do sleep 0.1; done' })
    await outputUntil(pid, /ready/)
    expect((await json(session, 'POST', '/processes/signal', { pid, signal: 'SIGINT' })).status).toBe(204)
    await outputUntil(pid, /got INT/)
    expect((await json(session, 'POST', '/processes/signal', { pid, signal: 'SIGTERM' })).status).toBe(204)
    const events = await output(pid, '&follow=true')
    expect(text(events)).toContain('got TERM')
    expect(exitOf(events)?.exitCode).toBe(3)
    expect((await json(session, 'POST', '/processes/signal', { pid, signal: 'SIGBUS' })).status).toBe(400)
    const sleeper = await start({ cmd: 'sleep 100' })
    await json(session, 'POST', '/processes/signal', { pid: sleeper, signal: 'SIGKILL' })
    expect(exitOf(await output(sleeper, '&follow=true'))?.exitCode).toBe(137)
  })

  it('kill ends the whole group, children too; timeoutMs ends it with -1', async () => {
    const pid = await start({ cmd: 'sleep 1000 & echo $!; wait' })
    const child = Number((await outputUntil(pid, /\d+\n/)).trim())
    expect((await json(session, 'POST', '/processes/kill', { pid })).status).toBe(204)
    expect(exitOf(await output(pid, '&follow=true'))?.exitCode).toBe(137)
    await until('child gone', async () => (fs.existsSync(`/proc/${child}`) ? undefined : true))
    const slow = await start({ cmd: 'sleep 100', timeoutMs: 300 })
    expect(exitOf(await output(slow, '&follow=true'))).toEqual({ type: 'exit', exitCode: -1, timedOut: true, durationMs: expect.any(Number) })
  })

  it('keeps the last PROCESS_RING_BYTES of a stream and says what it skipped', async () => {
    const total = PROCESS_RING_BYTES + 300_000
    const pid = await start({ cmd: `head -c ${total} /dev/zero | tr '\\0' a` })
    // Nobody reads while it runs (a follower would slow it down instead: next test).
    await until('exit', async () => ((await json(session, 'POST', '/processes/get', { pid })).body.state === 'exited' ? true : undefined))
    const events = await output(pid, '&follow=true')
    const chunks = events.filter((e) => e.type === 'stdout') as { offset: number; skipped?: number; data: string }[]
    expect(chunks[0]).toMatchObject({ offset: total - PROCESS_RING_BYTES, skipped: total - PROCESS_RING_BYTES })
    expect(text(events).length).toBe(PROCESS_RING_BYTES)
    expect(exitOf(events)?.exitCode).toBe(0)
  })

  it('a following reader that does not read slows the process instead of buffering', async () => {
    const pid = await start({ cmd: `read go; head -c ${8 * PROCESS_RING_BYTES} /dev/zero; echo done >&2`, stdin: true })
    // A follower that never reads: HTTP/2 flow control fills, the agent stops reading the pipe.
    const stalled = session.request({ ':method': 'GET', ':path': `/processes/output?pid=${pid}&follow=true` })
    stalled.pause()
    await new Promise((r) => stalled.once('response', r))
    await request(session, 'POST', `/processes/stdin?pid=${pid}`, 'go\n', 'application/octet-stream')
    await new Promise((r) => setTimeout(r, 1500))
    const info = (await json(session, 'POST', '/processes/get', { pid })).body
    expect(info.state, JSON.stringify(info)).toBe('running')
    expect(info.stdoutBytes).toBeLessThan(8 * PROCESS_RING_BYTES)
    expect(info.readers).toBe(1)
    // The reader leaves: the process runs to its end.
    stalled.close(http2.constants.NGHTTP2_CANCEL)
    await until('the reader gone', async () => ((await json(session, 'POST', '/processes/get', { pid })).body.readers === 0 ? true : undefined))
    const events = await output(pid, '&follow=true&since=0')
    expect(exitOf(events)?.exitCode).toBe(0)
    expect(text(events, 'stderr')).toBe('done\n')
  })

  it('runs a program on a terminal: tty, resize, Ctrl-C', async () => {
    const pid = await start({ cmd: 'tty; stty size; echo $TERM; read x; stty size; sleep 100; echo after', pty: { cols: 80, rows: 24 } })
    const first = await outputUntil(pid, /xterm-256color/)
    expect(first).toMatch(/\/dev\/pts\/\d+/)
    expect(first).toContain('24 80')
    expect((await json(session, 'POST', '/processes/resize', { pid, cols: 100, rows: 30 })).status).toBe(204)
    await request(session, 'POST', `/processes/stdin?pid=${pid}`, 'go\n', 'application/octet-stream')
    await outputUntil(pid, /30 100/)
    await request(session, 'POST', `/processes/stdin?pid=${pid}`, '\x03', 'application/octet-stream')
    const events = await output(pid, '&follow=true')
    expect(text(events)).not.toContain('after')
    expect(exitOf(events)?.exitCode).toBe(130)
  })

  it('answers process_not_found and refuses resize without a terminal', async () => {
    const missing = await json(session, 'POST', '/processes/get', { pid: 999_999 })
    expect(missing.status).toBe(404)
    expect(missing.body.code).toBe('process_not_found')
    const pid = await start({ cmd: 'sleep 100' })
    const r = await json(session, 'POST', '/processes/resize', { pid, cols: 10, rows: 10 })
    expect(r.body.code).toBe('process_state')
    await json(session, 'POST', '/processes/kill', { pid })
  })

  it('refuses a start beyond MAX_RUNNING_PROCESSES, and forgets the oldest exited beyond MAX_EXITED_PROCESSES', async () => {
    const noneRunning = async () => ((await json(session, 'GET', '/processes/list')).body.processes.some((p: { state: string }) => p.state === 'running') ? undefined : true)
    // What earlier tests killed may take a moment to be reaped.
    await until('earlier processes exited', noneRunning)
    const sleepers = []
    for (let i = 0; i < MAX_RUNNING_PROCESSES; i++) sleepers.push(await start({ cmd: 'sleep 300' }))
    const refused = await json(session, 'POST', '/processes/start', { cmd: 'true' })
    expect(refused.status).toBe(429)
    expect(refused.body.code).toBe('process_limit')
    for (const pid of sleepers) await json(session, 'POST', '/processes/kill', { pid })
    await until('all sleepers exited', noneRunning)
    // Every sleeper is exited now and only the last MAX_EXITED_PROCESSES of them are kept.
    const list = (await json(session, 'GET', '/processes/list')).body.processes
    expect(list.filter((p: { state: string }) => p.state === 'exited').length).toBe(MAX_EXITED_PROCESSES)
    // (They exited in whatever order the kernel reaped them: which ones are kept is not fixed.)
    const found = await Promise.all(sleepers.map(async (pid) => (await json(session, 'POST', '/processes/get', { pid })).body))
    expect(found.filter((p) => p.code === 'process_not_found')).toHaveLength(MAX_RUNNING_PROCESSES - MAX_EXITED_PROCESSES)
    expect(found.filter((p) => p.exitCode === 137)).toHaveLength(MAX_EXITED_PROCESSES)
    expect((await json(session, 'POST', '/processes/start', { cmd: 'true' })).status).toBe(200)
  })
})
