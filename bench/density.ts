// Density under TCG (issue 18, target 1), all through a real manager process:
// - the translation cache trade-off: for each QEMU_TB_SIZE_MB, a few clones of the image seed do
//   the same work (execs and a Node run), then their QEMUs' RSS/PSS and the exec p50/p95;
// - the baseline: QEMU's own translation cache (1 GiB, what main ran) with --baseline-vms clones;
// - density: --vms clones of the seed with the default configuration, every one answering exec,
//   PSS per QEMU (sum and median), host MemAvailable before and after, and one more create that
//   still succeeds; what the memory budget would still admit.
// Usage: node bench/density.ts [--vms 40] [--baseline-vms 10] [--sizes 16,32,64,128,0] [--sweep-vms 3] [--execs 30] [--json]
import fs from 'node:fs'
import os from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { ManagerProcess, qemuProcessesOf } from '../packages/manager/test/harness/manager-process.ts'
import { DEFAULT_TB_SIZE_MB } from '../packages/manager/src/config.ts'
import { defaultMemoryBudgetMb } from '../packages/manager/src/runtime/supervisor/memory-budget.ts'
import { qemuOverheadMb } from '../packages/manager/src/runtime/vmm/qemu/driver.ts'
import { Report } from './lib/report.ts'
import { median, memOf, pct, timeIt } from './lib/stats.ts'

const { values: opt } = parseArgs({
  options: {
    vms: { type: 'string', default: '40' },
    'baseline-vms': { type: 'string', default: '10' },
    sizes: { type: 'string', default: '16,32,64,128,0' },
    'sweep-vms': { type: 'string', default: '3' },
    execs: { type: 'string', default: '30' },
    json: { type: 'boolean', default: false },
  },
})
const VMS = Number(opt.vms)
const BASELINE_VMS = Number(opt['baseline-vms'])
/** `--sizes ''` skips the sweep. */
const SIZES = opt.sizes.split(',').filter((x) => x.trim() !== '').map(Number)
const SWEEP_VMS = Number(opt['sweep-vms'])
const EXECS = Number(opt.execs)
const SHAPE = { cpu: 1, memMb: 256 }
/** Idle time before memory is read: the guest settles after its last exec. */
const SETTLE_MS = 3000

const report = new Report('density')
const sizeName = (mb: number) => (mb === 0 ? 'QEMU default (1 GiB)' : `${mb} MiB`)
const memAvailableMb = () => Number(/^MemAvailable:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1]) / 1024

async function main() {
  // One storage root for every phase: the seed is built once and survives the restarts.
  const mgr = new ManagerProcess({ LOG_LEVEL: 'error', ENABLE_IMAGE_SEED: 'true', ENABLE_WARM_POOL: 'false', SNAPSHOT_TEMPLATE_CPU: String(SHAPE.cpu), SNAPSHOT_TEMPLATE_MEM_MB: String(SHAPE.memMb), MAX_VMS: String(Math.max(VMS, BASELINE_VMS) + 1) })
  const live = new Set<string>()
  const create = async () => {
    const r = await mgr.request('POST', '/v1/vms', { ...SHAPE, allowIps: [] })
    if (r.status !== 201) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}`)
    live.add(r.body.id)
    if (r.body.provisionMode !== 'snapshot') throw new Error(`expected a clone of the seed, got provisionMode ${r.body.provisionMode}`)
    return r.body as { id: string }
  }
  const exec = async (id: string, cmd = 'true') => {
    const [t, r] = await timeIt(() => mgr.request('POST', `/v1/vms/${id}/exec`, { cmd }))
    if (r.status !== 200 || r.body.exitCode !== 0) throw new Error(`exec failed in ${id}: ${r.status} ${JSON.stringify(r.body)}`)
    return t
  }
  const node = async (id: string) => {
    const r = await mgr.request('POST', `/v1/vms/${id}/run-js`, { code: 'let s = 0; for (let i = 0; i < 1e5; i++) s += i; result.set(s)' })
    if (r.status !== 200 || r.body.exitCode !== 0) throw new Error(`run-js failed in ${id}: ${r.status} ${JSON.stringify(r.body)}`)
  }
  const removeAll = async () => {
    for (const id of live) await mgr.request('DELETE', `/v1/vms/${id}`)
    live.clear()
  }
  /** RSS and PSS (MB) of each of this manager's QEMUs. */
  const qemuMemory = () => qemuProcessesOf(mgr.storageRoot).map((pid) => memOf(pid))
  const restart = async (env: Record<string, string>) => {
    await mgr.stop()
    mgr.setEnv(env)
    await mgr.start()
  }
  const waitForSeed = async () => {
    const deadline = Date.now() + 900_000
    for (;;) {
      const img = (await mgr.request('GET', '/v1/images')).body.find((i: { isDefault: boolean }) => i.isDefault)
      if (img?.seedStatus === 'failed') throw new Error(`seed failed: ${img.seedError}`)
      if (img?.seedStatus === 'ready') return
      if (Date.now() > deadline) throw new Error('gave up waiting for the image seed')
      await sleep(500)
    }
  }
  const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ')

  /** `n` clones, every one answering exec (timed), then idle; their QEMUs' memory. */
  async function clones(n: number, section: string, label: string) {
    const before = memAvailableMb()
    const [createMs] = await timeIt(async () => {
      for (let i = 0; i < n; i++) await create()
    })
    const execMs: number[] = []
    for (const id of live) execMs.push(await exec(id))
    await sleep(SETTLE_MS)
    const mem = qemuMemory()
    if (mem.length !== n) throw new Error(`expected ${n} QEMUs, found ${mem.length}`)
    const pss = mem.map((m) => m.pssMb)
    const after = memAvailableMb()
    report.add({ section, name: `${label}: clones answering exec`, value: execMs.length, unit: `of ${n}`, note: `created in ${(createMs / 1000).toFixed(1)} s; load ${load()}` })
    report.add({ section, name: `${label}: PSS per idle clone, median`, value: median(pss), unit: 'MB', note: `max ${Math.max(...pss).toFixed(0)} MB; RSS median ${median(mem.map((m) => m.rssMb)).toFixed(0)} MB` })
    report.add({ section, name: `${label}: PSS of all ${n} QEMUs`, value: pss.reduce((a, b) => a + b, 0), unit: 'MB' })
    report.add({ section, name: `${label}: host MemAvailable used by ${n} clones`, value: before - after, unit: 'MB', note: `MemAvailable ${before.toFixed(0)} → ${after.toFixed(0)} MB` })
    return { pssMedian: median(pss) }
  }

  try {
    process.stderr.write(`starting manager, building the image seed (${SHAPE.cpu} vCPU / ${SHAPE.memMb} MiB)…\n`)
    await mgr.start()
    await waitForSeed()

    // --- translation cache size: memory against exec latency --------------------------------------
    const sweep = new Map<number, { pss: number; p95: number }>()
    for (const size of SIZES) {
      await restart({ QEMU_TB_SIZE_MB: String(size) })
      for (let i = 0; i < SWEEP_VMS; i++) await create()
      const execMs: number[] = []
      // The same work in every VM: Node once (the largest code path a user runs), then execs.
      for (const id of live) await node(id)
      for (let i = 0; i < EXECS; i++) for (const id of live) execMs.push(await exec(id))
      await sleep(SETTLE_MS)
      const mem = qemuMemory()
      const section = 'translation cache size (QEMU_TB_SIZE_MB)'
      const row = { pss: median(mem.map((m) => m.pssMb)), p95: pct(execMs, 95) }
      sweep.set(size, row)
      const base = sweep.get(0)
      report.add({ section, name: `${sizeName(size)}: PSS per clone after the work, median of ${SWEEP_VMS}`, value: row.pss, unit: 'MB', note: `RSS median ${median(mem.map((m) => m.rssMb)).toFixed(0)} MB; load ${load()}` })
      report.add({ section, name: `${sizeName(size)}: exec \`true\` p50 / p95 (${execMs.length})`, value: row.p95, unit: 'ms', note: `p50 ${median(execMs).toFixed(0)} ms`, ...(base && size !== 0 ? { baseline: { name: 'QEMU default p95', value: base.p95 }, ratio: row.p95 / base.p95 } : {}) })
      await removeAll()
    }
    const def = sweep.get(0)
    if (def) {
      for (const [size, row] of sweep) {
        if (size === 0) continue
        report.add({ section: 'translation cache size (QEMU_TB_SIZE_MB)', name: `${sizeName(size)}: PSS vs QEMU default`, value: row.pss, unit: 'MB', baseline: { name: 'QEMU default', value: def.pss }, ratio: row.pss / def.pss })
      }
    }

    // --- baseline: QEMU's own translation cache, as main ran ------------------------------------
    await restart({ QEMU_TB_SIZE_MB: '0' })
    const baseline = BASELINE_VMS > 0 ? await clones(BASELINE_VMS, 'baseline: QEMU default translation cache', `${BASELINE_VMS} clones`) : undefined
    await removeAll()

    // --- density with the default configuration -------------------------------------------------
    // Empty is the default (config.ts), as if it were unset.
    await restart({ QEMU_TB_SIZE_MB: '' })
    // The warm pool stays off so that every VM counted is a clone of the seed.
    const section = `density: default configuration but the warm pool (QEMU_TB_SIZE_MB=${DEFAULT_TB_SIZE_MB})`
    const dense = await clones(VMS, section, `${VMS} clones`)
    if (baseline) report.add({ section, name: 'PSS per idle clone vs baseline', value: dense.pssMedian, unit: 'MB', baseline: { name: `QEMU default, ${BASELINE_VMS} clones`, value: baseline.pssMedian }, ratio: dense.pssMedian / baseline.pssMedian })
    const [oneMoreMs, extra] = await timeIt(async () => {
      const vm = await create()
      await exec(vm.id)
      return vm
    })
    report.add({ section, name: `create + exec with ${VMS} clones running`, value: oneMoreMs, unit: 'ms', note: `VM ${extra.id.slice(0, 8)} answered` })
    const budget = defaultMemoryBudgetMb(fs.readFileSync('/proc/meminfo', 'utf8'))
    // Each VM counts its guest and its VMM (the manager's VMs here run under TCG).
    const perVm = SHAPE.memMb + qemuOverheadMb('tcg', DEFAULT_TB_SIZE_MB)
    report.add({ section, name: `default memory budget: ${SHAPE.memMb} MiB VMs it admits`, value: Math.floor(budget / perVm), unit: 'VMs', note: `VM_MEMORY_BUDGET_MB default ${budget} MiB, ${perVm} MiB per VM with its VMM; MemTotal ${(os.totalmem() / 2 ** 20).toFixed(0)} MiB` })
    await removeAll()
  } finally {
    await removeAll().catch(() => undefined)
    await mgr.cleanup()
  }
  report.print()
}

await main()
