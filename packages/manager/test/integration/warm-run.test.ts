// Warm runtimes for run-ts / run-js in a real guest through the API: a VM restored from the image
// seed has none until its first call; then a runtime started ahead serves the next fitting call
// with the cold path's results, as uid 1000 with no_new_privs in a cgroup of its own, and is
// replaced when it is used or killed. One VM for the whole file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ManagerClient } from '../harness/manager-process.ts'
import { sharedManager, VM_ORIGINS } from '../harness/shared-manager.ts'

let mgr: ManagerClient
let vm: string

type Route = 'run-ts' | 'run-js'
const NAME: Record<Route, string> = { 'run-ts': 'deno', 'run-js': 'node' }
const PID: Record<Route, string> = { 'run-ts': 'Deno.pid', 'run-js': 'process.pid' }

beforeAll(async () => {
  mgr = await sharedManager()
  // The seed's shape: restored from a snapshot, as most VMs are.
  const r = await mgr.request('POST', '/v1/vms', { ...VM_ORIGINS[0].shape, allowIps: [] })
  if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}\n${mgr.output}`)
  vm = r.body.id
})

afterAll(async () => {
  if (vm) await mgr.request('DELETE', `/v1/vms/${vm}`)
})

const run = async (route: Route, body: object) => {
  const r = await mgr.request('POST', `/v1/vms/${vm}/${route}`, body)
  expect(r.status, JSON.stringify(r.body)).toBe(200)
  return r.body
}

/** Pids of runtimes waiting in a warm wrapper (between calls, the only runs alive). */
async function warmPids(route: Route): Promise<number[]> {
  // By argv[0] (Node names its main thread MainThread, so not by process name); anchored, so
  // never this shell's own command line.
  const r = await mgr.exec(vm, `for p in $(pgrep -u 1000 -f "^/usr/local/bin/${NAME[route]} "); do [ -e "$(tr '\\0' '\\n' </proc/$p/cmdline | grep 'wrapper.mjs$' | xargs -r dirname)/go.fifo" ] && echo $p; done; true`)
  return r.stdout.split('\n').filter(Boolean).map(Number)
}

async function warmPid(route: Route, not?: number): Promise<number> {
  let last = 0
  for (let i = 0; i < 300; i++) {
    const pids = (await warmPids(route)).filter((p) => p !== not)
    if (pids.length === 1 && pids[0] === last) return last
    last = pids.length === 1 ? pids[0]! : 0
    await new Promise((r) => setTimeout(r, 300))
  }
  throw new Error(`no warm ${NAME[route]} runtime appeared in ${vm}`)
}

const comparable = (r: Record<string, unknown>) => {
  const { durationMs: _, ...rest } = r
  return JSON.parse(JSON.stringify(rest).replace(/runs\/[0-9a-f-]{36}/g, 'runs/RUN'))
}

describe.each(['run-ts', 'run-js'] as const)('%s', (route) => {
  it('has no warm runtime in a VM restored from the seed until a first call, then serves the next call with one', async () => {
    expect(await warmPids(route)).toEqual([])
    expect(await run(route, { code: 'result.set(1)' })).toMatchObject({ exitCode: 0, result: 1 })
    const pid = await warmPid(route)
    expect((await run(route, { code: `result.set(${PID[route]})` })).result).toBe(pid)
  })

  it('answers as the cold path does: output, results, errors, exit codes, timeouts, permission denials', async () => {
    const programs: object[] = [
      { code: "console.log('out'); console.error('err'); result.set({ a: [1, 'x', null] })" },
      { code: "throw new TypeError('boom')" },
      { code: route === 'run-ts' ? 'Deno.exit(3)' : 'process.exit(3)' },
      { code: 'setInterval(() => {}, 1000)', timeoutMs: 3000 },
      route === 'run-ts'
        ? // The VM has no egress: --allow-net is off in both paths.
          { code: "await fetch('http://10.0.2.2:9/')" }
        : { code: "result.set([Object.keys(process.env).sort(), require('node:fs').readdirSync('/proc/self/fd').sort()])" },
    ]
    for (const p of programs) {
      const cold = await run(route, { ...p, warm: false })
      const pid = await warmPid(route)
      const warm = await run(route, p)
      expect(await warmPids(route), 'the warm runtime served the call').not.toContain(pid)
      expect(comparable(warm), JSON.stringify(p)).toEqual(comparable(cold))
    }
  })

  it('runs as uid 1000 with no_new_privs in a fresh cgroup, and carries nothing into the next call', async () => {
    const pid = await warmPid(route)
    const st = await mgr.exec(vm, `grep -E '^(Uid|NoNewPrivs):' /proc/${pid}/status; cat /proc/${pid}/cgroup`)
    expect(st.stdout).toMatch(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m)
    expect(st.stdout).toMatch(/^NoNewPrivs:\s+1$/m)
    const cgroup = /^0::(.*)$/m.exec(st.stdout)?.[1]
    expect(cgroup).toMatch(/^\/rds\/exec-[0-9a-f-]{36}$/)
    const read = route === 'run-ts' ? "Deno.env.get('CALL_TOKEN') ?? null" : 'process.env.CALL_TOKEN ?? null'
    const first = await run(route, { code: `globalThis.leak = 1; result.set([${PID[route]}, ${read}])`, env: ['CALL_TOKEN=first'] })
    expect(first.result[1]).toBe('first')
    const next = await warmPid(route, pid)
    const nst = await mgr.exec(vm, `cat /proc/${next}/cgroup`)
    expect(nst.stdout.trim()).not.toBe(`0::${cgroup}`)
    // Same env names (Deno's --allow-env list is part of how its runtime starts), another value.
    const second = await run(route, { code: `result.set([${PID[route]}, ${read}, typeof globalThis.leak])`, env: ['CALL_TOKEN=second'] })
    expect(second.result).toEqual([next, 'second', 'undefined'])
  })

  it('replaces a warm runtime the user killed', async () => {
    // A plain call first: the one before left a runtime of its env list's shape (Deno's --allow-env).
    await run(route, { code: 'result.set(1)' })
    const pid = await warmPid(route)
    await mgr.exec(vm, `kill -9 ${pid}`)
    const next = await warmPid(route, pid)
    expect((await run(route, { code: `result.set(${PID[route]})` })).result).toBe(next)
  })
})
