// Warm runtimes through the real agent on the host (test mode, real Deno and Node, a host build
// of rds-exec): a warm runtime serves a fitting call exactly as a cold start would, is used once,
// is replaced when it dies, and never carries one call's env or globals into the next.
import { execSync } from 'node:child_process'
import fs from 'node:fs'
import type http2 from 'node:http2'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { json, request } from './helpers/agent-client.ts'
import { canRunHostAgent as canRun, startHostAgent, type HostAgent } from './helpers/host-agent.ts'

let host: HostAgent
let session: http2.ClientHttp2Session

type Runtime = 'deno' | 'node'
const run = async (runtime: Runtime, body: object) => (await json(session, 'POST', '/run', { runtime, ...body })).body

/** Runtimes waiting in a warm wrapper of this agent: the only runs alive between calls. */
function warmPids(runtime: Runtime, flag?: string): number[] {
  const runs = path.join(host.root, 'state', 'runs')
  const pids: number[] = []
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    let argv: string[]
    try {
      argv = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0')
    } catch {
      continue
    }
    if (path.basename(argv[0] ?? '') !== runtime || !argv.some((a) => a.startsWith(runs) && a.endsWith('wrapper.mjs'))) continue
    if (flag && !argv.includes(flag)) continue
    if (fs.existsSync(path.join(path.dirname(argv.find((a) => a.endsWith('wrapper.mjs'))!), 'go.fifo'))) pids.push(Number(d))
  }
  return pids
}

/**
 * The one warm runtime once it settled: seen alone on two polls in a row (a runtime of a shape no
 * longer wanted is killed right after its start). `flag`: a start-up argument it must have.
 */
async function warmPid(runtime: Runtime, o: { not?: number; flag?: string } = {}): Promise<number> {
  let last = 0
  for (let i = 0; i < 600; i++) {
    const pids = warmPids(runtime, o.flag).filter((p) => p !== o.not)
    if (pids.length === 1 && pids[0] === last) return last
    last = pids.length === 1 ? pids[0]! : 0
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`no warm ${runtime} runtime appeared\n${host.log()}\n${execSync(`ps -o pid,stat,args --ppid ${host.pid}`)}`)
}

const PID = { deno: 'Deno.pid', node: 'process.pid' }

/** Drops what legitimately differs between two runs: timing and the run dir's random name. */
function comparable(r: Record<string, unknown>): unknown {
  const { durationMs: _, ...rest } = r
  return JSON.parse(JSON.stringify(rest).replace(/runs\/[0-9a-f-]{36}/g, 'runs/RUN'))
}

describe.skipIf(!canRun)('warm runtimes (host agent)', () => {
  beforeAll(async () => {
    host = await startHostAgent({ prefix: 'rds-agent-warm-', cgroups: true, deno: true })
    ;({ session } = host)
  }, 60_000)

  afterAll(() => host?.stop(), 60_000)

  describe.each(['deno', 'node'] as const)('%s', (runtime) => {
    it('starts one only after a call, and the next fitting call runs in it', async () => {
      expect(warmPids(runtime)).toEqual([])
      await run(runtime, { code: 'result.set(1)' })
      const pid = await warmPid(runtime)
      expect((await run(runtime, { code: `result.set(${PID[runtime]})` })).result).toBe(pid)
      // Used once: the process that served the call is gone, a new one waits.
      expect(await warmPid(runtime, { not: pid })).not.toBe(pid)
    })

    it('gives the same results as a cold start', async () => {
      const env = runtime === 'deno' ? 'Object.keys(Deno.env.toObject()).sort()' : 'Object.keys(process.env).sort()'
      const cwd = runtime === 'deno' ? 'Deno.cwd()' : 'process.cwd()'
      const programs: object[] = [
        { code: "console.log('out'); console.error('err'); result.set({ a: [1, 'x', null] })" },
        { code: "throw new TypeError('boom')" },
        { code: "result.error('bad')" },
        { code: runtime === 'deno' ? 'Deno.exit(3)' : 'process.exit(3)' },
        { code: 'setInterval(() => {}, 1000)', timeoutMs: 1500 },
        { code: `result.set([${env}, ${cwd}])` },
        { code: `result.set([${env}, typeof globalThis.result])`, env: ['CALL_VAR=v'] },
        { code: 'const x: number = 1; result.set(x)' },
        runtime === 'deno'
          ? { code: "await fetch('http://127.0.0.1:9/')" }
          : { code: "result.set(require('node:fs').readdirSync('/proc/self/fd').sort())" },
        runtime === 'deno' ? { code: "Deno.readTextFileSync('/etc/hostname')" } : { code: "result.set(typeof require)" },
      ]
      for (const p of programs) {
        const cold = await run(runtime, { ...p, warm: false })
        const shapePid = await warmPid(runtime).catch(() => undefined)
        const warm = await run(runtime, p)
        // The env-list program has its own Deno shape (--allow-env=CALL_VAR): it runs cold.
        if (shapePid !== undefined) expect(warmPids(runtime)).not.toContain(shapePid)
        expect(comparable(warm), JSON.stringify(p)).toEqual(comparable(cold))
      }
    })

    it("applies the call's env in the process, for its children too, and never into the next call", async () => {
      // Node applies any late-safe env; Deno's --allow-env names the keys, so the warm shape follows them.
      const child =
        runtime === 'deno'
          ? 'null'
          : "require('node:child_process').execSync('echo $SECRET_A').toString().trim()"
      const read = runtime === 'deno' ? "Deno.env.get('SECRET_A')" : 'process.env.SECRET_A'
      const setGlobal = runtime === 'deno' ? "Deno.env.set('SECRET_A', 'changed')" : "process.env.LEFT_OVER = 'x'"
      await run(runtime, { code: 'result.set(1)', env: ['SECRET_A=one'] })
      const pid = await warmPid(runtime, runtime === 'deno' ? { flag: '--allow-env=SECRET_A' } : {})
      const first = await run(runtime, { code: `globalThis.leak = 1; ${setGlobal}; result.set([${PID[runtime]}, ${read}, ${child}])`, env: ['SECRET_A=two'] })
      expect(first.result).toEqual([pid, runtime === 'deno' ? 'changed' : 'two', runtime === 'deno' ? null : 'two'])
      const next = await warmPid(runtime, { not: pid })
      const probe = runtime === 'deno' ? "[Deno.pid, Deno.env.get('SECRET_A') ?? null, typeof globalThis.leak]" : '[process.pid, process.env.SECRET_A ?? null, process.env.LEFT_OVER ?? null, typeof globalThis.leak]'
      const second = await run(runtime, { code: `result.set(${probe})`, env: ['SECRET_A=three'] })
      expect(second.result).toEqual(runtime === 'deno' ? [next, 'three', 'undefined'] : [next, 'three', null, 'undefined'])
    })

    it('runs as uid 1000 with no_new_privs in a cgroup of its own', async () => {
      await run(runtime, { code: 'result.set(1)' })
      const pid = await warmPid(runtime)
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
      expect(status).toMatch(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m)
      expect(status).toMatch(/^Gid:\s+1000\s+1000\s+1000\s+1000$/m)
      expect(status).toMatch(/^NoNewPrivs:\s+1$/m)
      const cgroup = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim()
      expect(cgroup).toMatch(/\/rds\/exec-[0-9a-f-]{36}$/)
      expect(fs.readFileSync(`/proc/${host.pid}/cgroup`, 'utf8').trim()).not.toBe(cgroup)
      // Deno may not read /proc/self; Node shows it from inside the call, the same process.
      const inside =
        runtime === 'node'
          ? "const fs = require('node:fs'); result.set([process.pid, process.getuid(), fs.readFileSync('/proc/self/status', 'utf8').match(/NoNewPrivs:\\s+(\\d)/)[1], fs.readFileSync('/proc/self/cgroup', 'utf8').trim()])"
          : 'result.set([Deno.pid])'
      expect((await run(runtime, { code: inside })).result).toEqual(runtime === 'node' ? [pid, 1000, '1', cgroup] : [pid])
      // The next one gets a new group.
      const next = await warmPid(runtime, { not: pid })
      expect(fs.readFileSync(`/proc/${next}/cgroup`, 'utf8').trim()).not.toBe(cgroup)
    })

    it('replaces a warm runtime that was killed, and counts the timeout from the call', async () => {
      await run(runtime, { code: 'result.set(1)' })
      const pid = await warmPid(runtime)
      process.kill(pid, 'SIGKILL')
      const next = await warmPid(runtime, { not: pid })
      // Idle for longer than the call's timeout before the call: it still has all of it.
      await new Promise((r) => setTimeout(r, 2500))
      const r = await run(runtime, { code: `await new Promise((r) => setTimeout(r, 100)); result.set(${PID[runtime]})`, timeoutMs: 2000 })
      expect(r).toMatchObject({ timedOut: false, exitCode: 0, result: next })
    })
  })

  it('serves a streamed run too: output as events, the result on the exit event', async () => {
    await run('deno', { code: 'result.set(1)' })
    const pid = await warmPid('deno')
    const r = await request(session, 'POST', '/run/stream', { runtime: 'deno', code: "console.log('line'); result.set(Deno.pid)" })
    const events = r.body.toString().trim().split('\n').map((l) => JSON.parse(l))
    expect(events[0]).toMatchObject({ type: 'stdout', data: 'line\n' })
    expect(events.at(-1)).toMatchObject({ type: 'exit', exitCode: 0, result: pid })
  })

  it('serves a call that needs other Deno permissions cold, with those permissions', async () => {
    await run('deno', { code: 'result.set(1)' })
    const pid = await warmPid('deno')
    const probe = "result.set([Deno.pid, Deno.permissions.querySync({ name: 'net', host: 'example.com' }).state])"
    const net = await run('deno', { code: probe, allowNet: true })
    expect(net.result[0]).not.toBe(pid)
    expect(net.result[1]).toBe('granted')
    // Now the warm one has the network; a call that asks for none is not given it.
    const withNet = await warmPid('deno', { flag: '--allow-net' })
    const off = await run('deno', { code: probe })
    expect(off.result[0]).not.toBe(withNet)
    expect(off.result[1]).toBe('prompt')
  })

  it('discards warm runtimes at /init (a restored snapshot would share their RNG state)', async () => {
    await run('node', { code: 'result.set(1)' })
    const pid = await warmPid('node')
    await json(session, 'POST', '/init', { unixTimeMs: Date.now(), entropy: Buffer.alloc(32, 7).toString('base64') })
    for (let i = 0; i < 200 && fs.existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 50))
    expect(fs.existsSync(`/proc/${pid}`)).toBe(false)
    expect(warmPids('node')).toEqual([])
    const r = await run('node', { code: 'result.set(process.pid)' })
    expect(r.result).not.toBe(pid)
  })
})
