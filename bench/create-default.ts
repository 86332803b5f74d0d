// Create speed with the default configuration (issue 18, target 2): a plain `POST /v1/vms` of the
// template shape (1 vCPU / 256 MiB) through a real manager, against a cold boot of the same shape
// and a resume from the image seed alone, all in one run. Reports which path the default takes
// (provisionMode) and its ratio to the cold boot.
// Usage: node bench/create-default.ts [--runs 5] [--json]
import { setTimeout as sleep } from 'node:timers/promises'
import os from 'node:os'
import { parseArgs } from 'node:util'
import { ManagerProcess } from '../packages/manager/test/harness/manager-process.ts'
import { Report } from './lib/report.ts'
import { median, pct, timeIt } from './lib/stats.ts'

const { values: opt } = parseArgs({ options: { runs: { type: 'string', default: '5' }, json: { type: 'boolean', default: false } } })
const RUNS = Number(opt.runs)
const SHAPE = { cpu: 1, memMb: 256 }
const report = new Report('create-default')
const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ')

async function main() {
  // Empty values are the defaults (config.ts): the harness's own test settings are undone.
  const defaults = { LOG_LEVEL: 'error', ENABLE_IMAGE_SEED: '', ENABLE_WARM_POOL: '', SNAPSHOT_TEMPLATE_CPU: '', SNAPSHOT_TEMPLATE_MEM_MB: '', WARM_POOL_TARGET: '', WARM_POOL_MAX_VMS: '' }
  const mgr = new ManagerProcess(defaults)
  const waitFor = async (what: string, check: () => Promise<boolean>) => {
    const deadline = Date.now() + 900_000
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`)
      await sleep(200)
    }
  }
  const seedReady = () => waitFor('the image seed', async () => {
    const img = await mgr.defaultImage()
    if (img?.seedStatus === 'failed') throw new Error(`seed failed: ${img.seedError}`)
    return img?.seedStatus === 'ready'
  })
  const poolReady = () => waitFor('the warm pool', async () => {
    const s = (await mgr.request('GET', '/v1/warm-pool')).body
    return !s.enabled || (s.ready >= s.target && !s.refilling)
  })
  /** `runs` creates (the POST alone, and on to the first exec), each VM deleted before the next. */
  const creates = async (before: () => Promise<void>) => {
    const post: number[] = []
    const toExec: number[] = []
    const modes = new Set<string>()
    for (let i = 0; i < RUNS; i++) {
      await before()
      const t0 = performance.now()
      const r = await mgr.request('POST', '/v1/vms', { ...SHAPE, allowIps: [] })
      if (r.status !== 201) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}`)
      post.push(performance.now() - t0)
      const [, e] = await timeIt(() => mgr.request('POST', `/v1/vms/${r.body.id}/exec`, { cmd: 'true' }))
      if (e.status !== 200 || e.body.exitCode !== 0) throw new Error(`exec failed: ${JSON.stringify(e.body)}`)
      toExec.push(performance.now() - t0)
      modes.add(r.body.provisionMode)
      await mgr.request('DELETE', `/v1/vms/${r.body.id}`)
    }
    return { post, toExec, mode: [...modes].join('+') }
  }
  try {
    process.stderr.write('default configuration: manager start, image seed and warm pool…\n')
    await mgr.start()
    await seedReady()
    const def = await creates(poolReady)
    await mgr.stop()
    mgr.setEnv({ ENABLE_WARM_POOL: 'false' })
    await mgr.start()
    const seed = await creates(seedReady)
    await mgr.stop()
    mgr.setEnv({ ENABLE_WARM_POOL: 'false', ENABLE_IMAGE_SEED: 'false' })
    await mgr.start()
    const cold = await creates(async () => undefined)

    const section = `create of ${SHAPE.cpu} vCPU / ${SHAPE.memMb} MiB (${RUNS} runs, median)`
    const row = (name: string, r: typeof def) => {
      report.add({ section, name: `${name}: POST /v1/vms`, value: median(r.post), unit: 'ms', baseline: { name: 'cold boot', value: median(cold.post) }, ratio: median(cold.post) / median(r.post), note: `provisionMode ${r.mode}; p95 ${pct(r.post, 95).toFixed(0)} ms; times faster` })
      report.add({ section, name: `${name}: create → first exec`, value: median(r.toExec), unit: 'ms', baseline: { name: 'cold boot', value: median(cold.toExec) }, ratio: median(cold.toExec) / median(r.toExec), note: `p95 ${pct(r.toExec, 95).toFixed(0)} ms; times faster; load ${load()}` })
    }
    row('default configuration', def)
    row('image seed alone (ENABLE_WARM_POOL=false)', seed)
    row('cold boot (seed and pool off)', cold)
  } finally {
    await mgr.cleanup()
  }
  report.print()
}

await main()
