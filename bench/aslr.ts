// Address-space randomisation of the user's processes under TCG (SANDBOX_ASLR): two real managers
// side by side, one with the default (auto: off under TCG) and one with SANDBOX_ASLR=on as the
// baseline, one VM each, calls interleaved between them so both see the same host load.
// Figures: exec `true` through the API, run-ts / run-js one-liners (warm runtime), and in-guest
// start + exit of bash, Node and Deno (a loop in one exec, so no channel in the figure).
// Usage: node bench/aslr.ts [--execs 50 --calls 10 --loops 10] [--skip-starts] [--json]
// (--skip-starts: only the run-ts / run-js rows)
import os from 'node:os'
import { parseArgs } from 'node:util'
import { ManagerProcess } from '../packages/manager/test/harness/manager-process.ts'
import { Report } from './lib/report.ts'
import { pct, timeIt } from './lib/stats.ts'
import { warmRuntimePid } from './lib/warm-runtime.ts'

const { values: opt } = parseArgs({ options: { execs: { type: 'string', default: '50' }, calls: { type: 'string', default: '10' }, loops: { type: 'string', default: '10' }, json: { type: 'boolean', default: false }, 'skip-starts': { type: 'boolean', default: false } } })
const EXECS = Number(opt.execs)
const CALLS = Number(opt.calls)
const LOOPS = Number(opt.loops)
const report = new Report('aslr')
const SECTION = 'issue 18 — user processes without ASLR under TCG (SANDBOX_ASLR)'

interface Side {
  mgr: ManagerProcess
  vmId: string
}

async function vmOn(env: Record<string, string>): Promise<Side> {
  const mgr = new ManagerProcess({ LOG_LEVEL: 'error', ...env })
  await mgr.start()
  const c = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
  if (c.status !== 201) throw new Error(`create failed: ${JSON.stringify(c.body)}`)
  return { mgr, vmId: c.body.id }
}

const exec = async (s: Side, cmd: string) => {
  const r = await s.mgr.request('POST', `/v1/vms/${s.vmId}/exec`, { cmd, timeoutMs: 120_000 })
  if (r.status !== 200 || r.body.exitCode !== 0) throw new Error(`exec failed: ${JSON.stringify(r.body)}`)
  return r.body as { stdout: string }
}

/** One figure: the default side's value against the SANDBOX_ASLR=on side's, interleaved. */
async function compare(name: string, n: number, measure: (s: Side) => Promise<number>, off: Side, on: Side, ps = [50, 95]): Promise<void> {
  const a: number[] = []
  const b: number[] = []
  for (let i = 0; i < n; i++) {
    // Alternate which side goes first, so neither always follows the other's load.
    if (i % 2) {
      a.push(await measure(off))
      b.push(await measure(on))
    } else {
      b.push(await measure(on))
      a.push(await measure(off))
    }
  }
  for (const p of ps) {
    const v = pct(a, p)
    const base = pct(b, p)
    report.add({ section: SECTION, name: `${name} p${p} (${n})`, value: v, unit: 'ms', baseline: { name: 'SANDBOX_ASLR=on', value: base }, ratio: v / base })
  }
}

async function main() {
  process.stderr.write('starting two managers and one VM each (cold boots)…\n')
  const [off, on] = await Promise.all([vmOn({}), vmOn({ SANDBOX_ASLR: 'on' })])
  try {
    for (const [s, want] of [[off, '00040000'], [on, '00000000']] as const) {
      const got = (await exec(s, 'cat /proc/self/personality')).stdout.trim()
      if (got !== want) throw new Error(`personality ${got}, expected ${want}: is the accelerator TCG?`)
    }
    // First calls translate everything once on both sides; not counted.
    for (const s of [off, on]) for (let i = 0; i < 3; i++) await exec(s, 'true')

    const inGuest = (prog: string) => async (s: Side) => {
      const out = await exec(s, `s=$(date +%s%N); for i in $(seq ${LOOPS}); do ${prog}; done; echo $(( ($(date +%s%N) - s) / ${LOOPS} ))`)
      return Number(out.stdout.trim()) / 1e6
    }
    if (!opt['skip-starts']) {
      await compare(`in guest: bash -c true, start + exit, mean of ${LOOPS}`, 5, inGuest('bash -c true'), off, on, [50])
      await compare(`in guest: node -e 0, start + exit, mean of ${LOOPS}`, 3, inGuest('node -e 0'), off, on, [50])
      await compare(`in guest: deno eval 0, start + exit, mean of ${LOOPS}`, 3, inGuest('deno eval 0'), off, on, [50])
      await compare('exec `true` through the API', EXECS, async (s) => (await timeIt(() => exec(s, 'true')))[0], off, on)
    }
    for (const [route, runtime] of [['run-ts', 'deno'], ['run-js', 'node']] as const) {
      const call = async (s: Side, first = false) => {
        // Spaced as an agent's tool calls: the warm runtime is up again before each (untimed);
        // the first run of a runtime is what starts one.
        if (!first) await warmRuntimePid(s.mgr, s.vmId, runtime)
        const [t, r] = await timeIt(() => s.mgr.request('POST', `/v1/vms/${s.vmId}/${route}`, { code: 'result.set(1 + 1)' }))
        if (r.status !== 200 || r.body.result !== 2) throw new Error(`${route} failed: ${JSON.stringify(r.body)}`)
        return t
      }
      for (const s of [off, on]) await call(s, true)
      await compare(`${route} one-line program (warm runtime)`, CALLS, call, off, on)
    }
    report.add({ section: SECTION, name: 'load average (1 min) at the end', value: os.loadavg()[0]!, unit: '' })
  } finally {
    await Promise.all([off.mgr.cleanup(), on.mgr.cleanup()])
  }
  report.print()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
