// Template benchmarks, all in one run so the ratios compare like with like (same host load):
// create -> first exec of a VM spawned from a template, against a cold boot, and against a cold
// boot that then runs the same setup (what a template spares). Image seeds are off, so the
// baseline is a real cold boot. Also the build time of the template.
// Usage: npm run bench:templates [-- --runs 5]
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { ManagerProcess } from '../packages/manager/test/harness/manager-process.ts'
import { median, ms, pct, timeIt } from './lib/stats.ts'

const { values: opt } = parseArgs({ options: { runs: { type: 'string', default: '5' } } })
const RUNS = Number(opt.runs)
const SHAPE = { cpu: 1, memMb: 512 }
/** Work a template is for, kept inside the guest (no network): many small files and a Node start. */
const SETUP = ['mkdir -p data && for i in $(seq 1 300); do echo "$i" > data/f$i; done', 'node -e "require(\'fs\').writeFileSync(\'ready\', String(Date.now()))"']

const lines: string[] = []
const say = (line: string) => {
  lines.push(line)
  process.stderr.write(`  ${line}\n`)
}
const stat = (xs: number[]) => `median ${ms(median(xs))}, p95 ${ms(pct(xs, 95))}`

async function main() {
  const mgr = new ManagerProcess({ LOG_LEVEL: 'error', ENABLE_IMAGE_SEED: 'false' })
  const exec = async (id: string, cmd: string) => {
    const r = await mgr.request('POST', `/v1/vms/${id}/exec`, { cmd, timeoutMs: 120_000 })
    if (r.status !== 200 || r.body.exitCode !== 0) throw new Error(`exec failed: ${JSON.stringify(r.body)}`)
  }
  /** `make` -> first exec (`check`: the setup's result is there, where there is one), `runs` times. */
  const measure = async (mode: string, make: () => Promise<{ id: string; provisionMode: string }>, afterCreate: (id: string) => Promise<void>, check = 'test -e ready && test -e data/f300') => {
    const times: number[] = []
    for (let i = 0; i < RUNS; i++) {
      const [t, vm] = await timeIt(async () => {
        const vm = await make()
        await afterCreate(vm.id)
        await exec(vm.id, check)
        return vm
      })
      if (vm.provisionMode !== mode) throw new Error(`expected provisionMode ${mode}, got ${vm.provisionMode}`)
      times.push(t)
      await mgr.request('DELETE', `/v1/vms/${vm.id}`)
    }
    return times
  }
  const post = async (url: string, body: Record<string, unknown>) => {
    const r = await mgr.request('POST', url, body)
    if (r.status !== 201) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}`)
    return r.body as { id: string; provisionMode: string }
  }

  try {
    process.stderr.write('starting manager…\n')
    await mgr.start()
    const [buildMs] = await timeIt(async () => {
      const r = await mgr.request('POST', '/v1/templates', { name: 'bench', ...SHAPE, setup: SETUP })
      if (r.status !== 202) throw new Error(`template create failed: ${JSON.stringify(r.body)}`)
      for (;;) {
        const t = (await mgr.request('GET', '/v1/templates/bench')).body
        if (t.status === 'ready') return
        if (t.status === 'failed') throw new Error(`template build failed: ${t.error}`)
        await sleep(100)
      }
    })
    const cold = await measure('boot', () => post('/v1/vms', { ...SHAPE, allowIps: [] }), async () => {}, 'true')
    const coldSetup = await measure('boot', () => post('/v1/vms', { ...SHAPE, allowIps: [] }), async (id) => {
      for (const cmd of SETUP) await exec(id, cmd)
    })
    const spawned = await measure('snapshot', () => post('/v1/templates/bench/vms', {}), async () => {})
    await mgr.request('DELETE', '/v1/templates/bench')

    say(`template spawn vs cold boot (${SHAPE.cpu} vCPU / ${SHAPE.memMb} MiB, ${RUNS} runs each, create -> first exec, TCG, ${new Date().toISOString().slice(0, 10)})`)
    say(`template build (boot, ${SETUP.length} setup commands, snapshot): ${ms(buildMs)}`)
    say(`cold boot:                 ${stat(cold)}`)
    say(`cold boot + the setup:     ${stat(coldSetup)}`)
    say(`spawn from the template:   ${stat(spawned)}`)
    say(`ratio (median): cold boot / spawn = ${(median(cold) / median(spawned)).toFixed(1)}x; cold boot + setup / spawn = ${(median(coldSetup) / median(spawned)).toFixed(1)}x`)
    console.log(lines.join('\n'))
  } finally {
    await mgr.cleanup()
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
