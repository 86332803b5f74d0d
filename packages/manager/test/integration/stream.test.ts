// Streamed exec/run-ts (`"stream": true`, NDJSON OutputEvents) and argv mode, through the real
// manager and a real VM's agent. Ordering is asserted by event order and by receipt gaps measured
// against the command's own sleeps; flow control by bytes (the producer's progress in the guest
// against what the client has read), never by host speed.
import http from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chunkBytes, matches, OutputEvent, type OutputChunkEvent } from '@rds/protocol'
import type { ManagerClient } from '../harness/manager-process.ts'
import { sharedManager } from '../harness/shared-manager.ts'

const MiB = 1024 * 1024
const SECRET = 'streamed-secret-value-7d1f'
let mgr: ManagerClient
let vm: string

beforeAll(async () => {
  mgr = await sharedManager()
  // The template shape: restored from the shared manager's seed.
  const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [], secretEnv: [`STREAM_TOKEN=${SECRET}`] })
  if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}\n${mgr.output}`)
  vm = r.body.id
})

afterAll(async () => {
  if (vm) await mgr.request('DELETE', `/v1/vms/${vm}`)
})

interface Received {
  event: OutputEvent
  /** performance.now() when the client had the event's line. */
  at: number
}

/**
 * A streamed request as a program would make it, on a raw HTTP connection so the test decides
 * when to read and when to leave. `onEvent` may return 'pause' to stop reading (the socket is no
 * longer read, so TCP holds the manager back) or 'leave' to drop the connection.
 */
function stream(path: string, body: unknown, onEvent?: (r: Received, all: Received[]) => 'pause' | 'leave' | void) {
  const events: Received[] = []
  let res: http.IncomingMessage | undefined
  let req!: http.ClientRequest
  let left = false
  let settle: (() => void) | undefined
  const done = new Promise<{ status: number; type: string | undefined; events: Received[]; left: boolean }>((resolve, reject) => {
    req = http.request(`${mgr.baseUrl}${path}`, { method: 'POST', headers: { 'x-api-key': mgr.apiKey, 'content-type': 'application/json' } }, (r) => {
      res = r
      const status = r.statusCode!
      const type = r.headers['content-type']
      if (!type?.startsWith('application/x-ndjson')) {
        let text = ''
        r.on('data', (c) => (text += c))
        r.on('end', () => resolve({ status, type, events: [{ event: JSON.parse(text), at: performance.now() }], left: false }))
        return
      }
      let partial = ''
      settle = () => resolve({ status, type, events, left })
      r.on('data', (c: Buffer) => {
        if (left) return
        partial += c.toString('utf8')
        let nl: number
        while ((nl = partial.indexOf('\n')) >= 0) {
          const event = JSON.parse(partial.slice(0, nl)) as unknown
          partial = partial.slice(nl + 1)
          if (!matches(OutputEvent, event)) return reject(new Error(`not an OutputEvent: ${JSON.stringify(event).slice(0, 200)}`))
          const rec = { event, at: performance.now() }
          events.push(rec)
          const what = onEvent?.(rec, events)
          if (what === 'pause') r.pause()
          if (what === 'leave') {
            left = true
            req.destroy()
            return resolve({ status, type, events, left })
          }
        }
      })
      r.on('end', () => resolve({ status, type, events, left }))
      r.on('error', (e) => (left ? undefined : reject(e)))
    })
    req.on('error', (e) => reject(e))
    req.end(JSON.stringify(body))
  })
  return {
    done,
    resume: () => res?.resume(),
    /** Drops the connection in the middle of the stream, as a client that goes away. */
    leave: () => {
      left = true
      req.destroy()
      settle?.()
    },
  }
}

const bytesOf = (events: Received[], s: 'stdout' | 'stderr') => Buffer.concat(events.filter((r) => r.event.type === s).map((r) => chunkBytes(r.event as OutputChunkEvent)))
const textOf = (events: Received[], s: 'stdout' | 'stderr') => bytesOf(events, s).toString('utf8')
const last = (events: Received[]) => events.at(-1)!.event

describe('streamed exec', () => {
  it('sends the first chunk as it happens, long before the exit', async () => {
    const { status, type, events } = await stream(`/v1/vms/${vm}/exec`, { cmd: 'echo first; sleep 3; echo second', stream: true }).done
    expect([status, type]).toEqual([200, 'application/x-ndjson'])
    const first = events.findIndex((r) => r.event.type === 'stdout' && (r.event as OutputChunkEvent).data?.includes('first'))
    const second = events.findIndex((r) => r.event.type === 'stdout' && (r.event as OutputChunkEvent).data?.includes('second'))
    const exit = events.findIndex((r) => r.event.type === 'exit')
    expect(first).toBeGreaterThanOrEqual(0)
    expect(first).toBeLessThan(second)
    expect(second).toBeLessThan(exit)
    expect(exit).toBe(events.length - 1)
    expect(last(events)).toMatchObject({ type: 'exit', exitCode: 0, timedOut: false })
    // The command slept 3 s between its lines: had the output been held until the exit, both
    // would have arrived together. Half the sleep leaves room for any delay of the first one.
    const gap = events[exit]!.at - events[first]!.at
    expect(gap).toBeGreaterThan(1500)
    console.log(`streamed exec: first chunk received ${Math.round(gap)} ms before the exit event (the command slept 3000 ms in between)`)
  })

  it('keeps each stream whole and in order, stdout and stderr interleaved as written', async () => {
    const { events } = await stream(`/v1/vms/${vm}/exec`, { cmd: 'for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.3; done', stream: true }).done
    expect(textOf(events, 'stdout')).toBe('out1\nout2\nout3\n')
    expect(textOf(events, 'stderr')).toBe('err1\nerr2\nerr3\n')
    // Each pair was written 0.3 s before the next: err(i) arrives before out(i+1).
    const at = (s: string) => events.findIndex((r) => (r.event as OutputChunkEvent).data?.includes(s))
    expect(at('err1')).toBeLessThan(at('out2'))
    expect(at('err2')).toBeLessThan(at('out3'))
  })

  it('sends bytes that are not UTF-8 as dataBase64 and keeps characters cut by a read whole', async () => {
    const { events } = await stream(`/v1/vms/${vm}/exec`, { cmd: "printf 'ok\\377\\376\\000\\303'; sleep 0.5; printf '\\342\\202'; sleep 0.5; printf '\\254 end'", stream: true }).done
    const bytes = Buffer.concat([Buffer.from('ok'), Buffer.from([0xff, 0xfe, 0x00, 0xc3]), Buffer.from('€ end')])
    expect(bytesOf(events, 'stdout')).toEqual(bytes)
    expect(events.some((r) => (r.event as OutputChunkEvent).dataBase64 !== undefined)).toBe(true)
    // The euro sign was written in two parts half a second apart and still arrives as text.
    expect(events.some((r) => (r.event as OutputChunkEvent).data?.includes('€'))).toBe(true)
  })

  it('kills the command at its timeout: exit with timedOut and exitCode -1', async () => {
    const { events } = await stream(`/v1/vms/${vm}/exec`, { cmd: 'echo started; sleep 100', timeoutMs: 2000, stream: true }).done
    expect(textOf(events, 'stdout')).toBe('started\n')
    expect(last(events)).toMatchObject({ type: 'exit', exitCode: -1, timedOut: true })
  })

  it('kills the command when the client disconnects', async () => {
    const marker = `/tmp/stream-left-${Date.now()}`
    // The command would create the marker 6 s after it said ready.
    const cmd = `echo ready; sleep 6.17; touch ${marker}`
    const started = performance.now()
    const { events, left } = await stream(`/v1/vms/${vm}/exec`, { cmd, stream: true }, (r) => ((r.event as OutputChunkEvent).data?.includes('ready') ? 'leave' : undefined)).done
    expect(left).toBe(true)
    expect(events.some((r) => r.event.type === 'exit')).toBe(false)
    await mgr.waitFor('the abandoned command gone from the guest', async () => ((await mgr.exec(vm, "pgrep -f 'sleep 6[.]17' || echo none")).stdout.trim() === 'none' ? true : undefined), 60_000)
    // Past the moment it would have written the marker: it never does.
    const wait = Math.max(0, 6170 + 2000 - (performance.now() - started))
    const check = await mgr.exec(vm, `sleep ${(wait / 1000).toFixed(1)}; test -e ${marker} && echo present || echo absent`)
    expect(check.stdout).toBe('absent\n')
    // The history records the call, and that it ended with the client.
    const logs = await mgr.request('GET', `/v1/vms/${vm}/exec-logs?type=exec&limit=200`)
    const entry = logs.body.entries.find((e: any) => e.input.cmd === cmd)
    expect(entry).toMatchObject({ input: { stream: true }, result: { stdout: 'ready\n', error: { code: 'client_disconnected' } } })
  })

  it('slows a producer to the pace of a slow reader: what the guest wrote stays within a bound of what the client read', async () => {
    const progress = `/tmp/stream-progress-${Date.now()}`
    // 200 MiB in 64 KiB writes; every 1 MiB the producer notes how much the pipe has taken.
    const code = `import sys\nchunk = b'a' * 65536\nfor i in range(3200):\n    sys.stdout.buffer.write(chunk)\n    sys.stdout.buffer.flush()\n    if i % 16 == 15:\n        open('${progress}', 'w').write(str((i + 1) * 65536))\n`
    let read = 0
    let paused!: () => void
    const stopped = new Promise<void>((r) => (paused = r))
    const s = stream(`/v1/vms/${vm}/exec`, { args: ['python3', '-c', code], stream: true, timeoutMs: 120_000 }, (r) => {
      if (r.event.type === 'stdout') read += chunkBytes(r.event).length
      if (read < 2 * MiB) return undefined
      // Read the first 2 MiB, then stop reading altogether.
      paused()
      return 'pause'
    })
    await Promise.race([stopped, s.done])
    expect(read).toBeGreaterThanOrEqual(2 * MiB)
    const written = async () => Number((await mgr.exec(vm, `cat ${progress} 2>/dev/null || echo 0`)).stdout.trim())
    // Wait until the producer stands still (two looks 2 s apart agree), or has written it all.
    // It has written at least what the client read, so its progress is never 0 from here on.
    let before = -1
    const stalled = await mgr.waitFor('the producer to stand still', async () => {
      const now = await written()
      if (now === before || now >= 200 * MiB) return now
      before = now
      await new Promise((r) => setTimeout(r, 2000))
      return undefined
    }, 120_000)
    console.log(`slow reader: the client read ${(read / MiB).toFixed(1)} MiB and stopped; the producer stood still at ${(stalled / MiB).toFixed(1)} MiB of 200 MiB`)
    // Pipe, agent, HTTP/2 window (4 MiB), manager relay, and the loopback TCP buffers in between.
    expect(stalled).toBeGreaterThanOrEqual(read - MiB)
    expect(stalled).toBeLessThan(read + 32 * MiB)
    s.leave()
    await s.done
    await mgr.waitFor('the producer killed with its client', async () => ((await mgr.exec(vm, "pgrep -f 'range[(]3200' || echo none")).stdout.trim() === 'none' ? true : undefined), 60_000)
  })

  it('records streamed calls in the exec history, capped and with secrets masked', async () => {
    const { events } = await stream(`/v1/vms/${vm}/exec`, { cmd: 'echo "token=$STREAM_TOKEN"; head -c 100000 /dev/zero | tr "\\0" b', stream: true }).done
    // The client gets the command's real output; the history keeps a masked, capped copy.
    expect(textOf(events, 'stdout').startsWith(`token=${SECRET}\n`)).toBe(true)
    // Recorded as the exit event passes, which may be a moment after the client has it.
    const entry = await mgr.waitFor('the streamed call in the history', async () => {
      const logs = await mgr.request('GET', `/v1/vms/${vm}/exec-logs?type=exec&limit=5`)
      return logs.body.entries.find((e: any) => e.input.stream === true && String(e.input.cmd).startsWith('echo "token='))
    }, 30_000)
    expect(entry.input).toMatchObject({ stream: true })
    expect(entry.result.stdout.startsWith('token=[secret STREAM_TOKEN]\n')).toBe(true)
    expect(entry.result.stdout.endsWith('…[truncated]')).toBe(true)
    expect(JSON.stringify(entry)).not.toContain(SECRET)
  })

  it('refuses before the first byte with ordinary JSON errors', async () => {
    const missing = await stream('/v1/vms/no-such-vm/exec', { cmd: 'true', stream: true }).done
    expect([missing.status, missing.type?.startsWith('application/json'), (missing.events[0]!.event as any).code]).toEqual([404, true, 'vm_not_found'])
    const bad = await stream(`/v1/vms/${vm}/exec`, { cmd: 'true', stream: 'yes' }).done
    expect(bad.status).toBe(400)
    const jail = await stream(`/v1/vms/${vm}/exec`, { cmd: 'true', cwd: '/etc', stream: true }).done
    expect([jail.status, (jail.events[0]!.event as any).code]).toEqual([400, 'path_not_allowed'])
  })

  it('streams run-ts with its result on the exit event', async () => {
    const { events } = await stream(`/v1/vms/${vm}/run-ts`, { code: 'console.log("hi from deno"); result.set({ n: 42 })', stream: true }).done
    expect(textOf(events, 'stdout')).toBe('hi from deno\n')
    expect(last(events)).toMatchObject({ type: 'exit', exitCode: 0, result: { n: 42 } })
  })
})

describe('argv mode', () => {
  const args = ['a b', '"double"', "'single'", '$(touch /tmp/argv-pwned)', '`id`', 'line1\nline2', '', '*', '\\', '--flag=x y']
  const echoArgv = ['python3', '-c', 'import json, sys; print(json.dumps(sys.argv[1:]))', ...args]

  it('runs args[0] from the PATH without a shell: every argument arrives unchanged', async () => {
    const r = await mgr.request('POST', `/v1/vms/${vm}/exec`, { args: echoArgv })
    expect(r.status, JSON.stringify(r.body)).toBe(200)
    expect(JSON.parse(r.body.stdout)).toEqual(args)
    const s = await stream(`/v1/vms/${vm}/exec`, { args: echoArgv, stream: true }).done
    expect(JSON.parse(textOf(s.events, 'stdout'))).toEqual(args)
    expect((await mgr.exec(vm, 'test -e /tmp/argv-pwned && echo present || echo absent')).stdout).toBe('absent\n')
  })

  it('wants exactly one of cmd and args', async () => {
    for (const body of [{ cmd: 'true', args: ['true'] }, {}, { args: [] }]) {
      const r = await mgr.request('POST', `/v1/vms/${vm}/exec`, body)
      expect(r.status).toBe(400)
    }
    expect((await mgr.request('POST', `/v1/vms/${vm}/exec`, { cmd: 'true', args: ['true'] })).body.code).toBe('invalid_command')
    expect((await mgr.request('POST', `/v1/vms/${vm}/exec`, {})).body.code).toBe('invalid_command')
    // A program that is not there: the launcher's exec fails with 127, as a shell would answer.
    expect((await mgr.request('POST', `/v1/vms/${vm}/exec`, { args: ['no-such-program'] })).body.exitCode).toBe(127)
  })
})
