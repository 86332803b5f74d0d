// Snapshot benchmarks, all in one run so the ratios compare like with like:
// - create -> first exec: cold boot vs the image seed snapshot vs the warm pool;
// - the floor: the same seed snapshot resumed by the QEMU driver directly (no manager, no
//   HTTP, no guest init), against the API's create from that seed;
// - pause time and size of a snapshot of a running VM, and of a running clone live against the
//   stop-then-stream path (lib/clone-pause.ts);
// - host memory (PSS) per idle clone, 1 vs 10 clones; 10 concurrent creates from one snapshot.
// Usage: npm run bench:snapshots [-- --runs 5 --clones 10 --json] (`--only pause`: the clone's
// snapshot pause alone, a few minutes)
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { ManagerProcess, qemuProcessesOf } from '../packages/manager/test/harness/manager-process.ts'
import { AgentClient } from '../packages/manager/src/runtime/agent/client.ts'
import { createQemuDriver } from '../packages/manager/src/runtime/vmm/qemu/driver.ts'
import { copySparse } from '../packages/manager/src/runtime/storage/copy.ts'
import { measureClonePause } from './lib/clone-pause.ts'
import { Report } from './lib/report.ts'
import { rawVmFiles } from './lib/raw-vm-files.ts'
import { median, memOf, pct, timeIt } from './lib/stats.ts'

const { values: opt } = parseArgs({ options: { runs: { type: 'string', default: '5' }, clones: { type: 'string', default: '10' }, only: { type: 'string' }, json: { type: 'boolean', default: false } } })
const RUNS = Number(opt.runs)
const CLONES = Number(opt.clones)
const SHAPE = { cpu: 1, memMb: 512 }

const report = new Report('snapshots')

async function main() {
  const mgr = new ManagerProcess({ LOG_LEVEL: 'error', ENABLE_IMAGE_SEED: 'true', SNAPSHOT_TEMPLATE_CPU: String(SHAPE.cpu), SNAPSHOT_TEMPLATE_MEM_MB: String(SHAPE.memMb) })
  const create = async (body: Record<string, unknown> = {}) => {
    const r = await mgr.request('POST', '/v1/vms', { ...SHAPE, allowIps: [], ...body })
    if (r.status !== 201) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}`)
    return r.body as { id: string; provisionMode: string; guestIp: string }
  }
  const exec = async (id: string, cmd = 'true') => {
    const r = await mgr.request('POST', `/v1/vms/${id}/exec`, { cmd })
    if (r.status !== 200 || r.body.exitCode !== 0) throw new Error(`exec failed: ${JSON.stringify(r.body)}`)
    return r.body.stdout as string
  }
  const remove = (id: string) => mgr.request('DELETE', `/v1/vms/${id}`)
  /** create -> first exec through the API, `runs` times, checking how each VM was provisioned. */
  const createToExec = async (mode: string, before?: () => Promise<void>) => {
    const times: number[] = []
    for (let i = 0; i < RUNS; i++) {
      await before?.()
      const [t, vm] = await timeIt(async () => {
        const vm = await create()
        await exec(vm.id)
        return vm
      })
      if (vm.provisionMode !== mode) throw new Error(`expected provisionMode ${mode}, got ${vm.provisionMode}`)
      times.push(t)
      await remove(vm.id)
    }
    return times
  }
  const waitFor = async (what: string, check: () => Promise<boolean>) => {
    const deadline = Date.now() + 600_000
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`)
      await sleep(200)
    }
  }

  try {
    process.stderr.write('starting manager, building the image seed…\n')
    await mgr.start()
    const seedId = await (async () => {
      let id = ''
      await waitFor('the image seed', async () => {
        const img = (await mgr.request('GET', '/v1/images')).body.find((i: { isDefault: boolean }) => i.isDefault)
        if (img?.seedStatus === 'failed') throw new Error(`seed failed: ${img.seedError}`)
        id = img?.seedSnapshotId ?? ''
        return img?.seedStatus === 'ready'
      })
      return id
    })()
    const img = (await mgr.request('GET', '/v1/images')).body.find((i: { isDefault: boolean }) => i.isDefault)
    const imgDir = path.join(mgr.storageRoot, 'images', img.id)
    const snapDir = path.join(mgr.storageRoot, 'snapshots', seedId)
    await measureClonePause(mgr, { imgDir, snapDir, ...SHAPE }, RUNS, report)
    if (opt.only === 'pause') return report.print()

    // --- from the seed through the API, and the floor: the driver resuming the same files --------
    const seedTimes = await createToExec('snapshot')
    const rawTimes: number[] = []
    const rawDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-bench-raw-'))
    const driver = createQemuDriver({ qemuBin: 'qemu-system-x86_64', accel: () => 'tcg', instance: 'bench-raw', netnsPath: `/run/netns/${mgr.netns}` })
    // The seed was saved with a NIC, so the floor needs one too: a bare TAP in the manager's namespace (no routes, no rules).
    const tap = 'rdsbench0'
    execFileSync('ip', ['-n', mgr.netns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap'])
    try {
      for (let i = 0; i < RUNS; i++) {
        const d = path.join(rawDir, `vm${i}`)
        fs.mkdirSync(d)
        const [t, h] = await timeIt(async () => {
          await copySparse(path.join(snapDir, 'overlay.ext4'), path.join(d, 'overlay.ext4'))
          const h = await driver.restore({
            vmId: `raw${i}`,
            ...SHAPE,
            ...rawVmFiles(imgDir, d),
            net: { tap, mac: '02:00:00:00:be:01' },
            memory: { file: path.join(snapDir, 'memory.raw'), shared: false },
          // A seed's memory file is its RAM, byte for byte: its size is the RAM the state was saved with.
          }, { stateFile: path.join(snapDir, 'state.bin'), withoutRam: true, ramBytes: fs.statSync(path.join(snapDir, 'memory.raw')).size })
          const agent = new AgentClient(path.join(d, 'c.sock'))
          await agent.waitReady(60_000, () => h.isAlive())
          const r = await agent.call('exec', { cmd: 'true' }, 60_000)
          if (r.exitCode !== 0) throw new Error('raw exec failed')
          agent.close()
          return h
        })
        rawTimes.push(t)
        await h.kill(500)
      }
    } finally {
      execFileSync('ip', ['-n', mgr.netns, 'link', 'del', tap])
      fs.rmSync(rawDir, { recursive: true, force: true })
    }

    // --- snapshots of running VMs: one booted (RAM in its own file), one resumed from the seed ---
    // A booted VM's RAM file is copied while the guest is paused; a clone maps its snapshot
    // privately, so its own snapshot streams the RAM instead. Both are reported.
    const snapshotRuns = async (vmId: string) => {
      await exec(vmId, 'head -c 64000000 /dev/urandom > /dev/shm/64mb; echo x > /workspace/x')
      const pauses: number[] = []
      const calls: number[] = []
      let sizes = { memoryBytes: 0, stateBytes: 0, diskBytes: 0 }
      let last = ''
      for (let i = 0; i < RUNS; i++) {
        const [t, r] = await timeIt(() => mgr.request('POST', `/v1/vms/${vmId}/snapshots`))
        if (r.status !== 201) throw new Error(`snapshot failed: ${JSON.stringify(r.body)}`)
        pauses.push(r.body.pauseMs)
        calls.push(t)
        sizes = r.body.sizes
        if (last) await mgr.request('DELETE', `/v1/snapshots/${last}`)
        last = r.body.id
      }
      return { pauses, calls, sizes, last }
    }
    // Another shape than the seed's, so this one boots cold and keeps its RAM in a file.
    const booted = await create({ memMb: SHAPE.memMb + 64 })
    if (booted.provisionMode !== 'boot') throw new Error('expected a cold-booted VM')
    const fromBooted = await snapshotRuns(booted.id)
    await remove(booted.id)
    const clone = await create()
    const fromClone = await snapshotRuns(clone.id)
    await remove(clone.id)
    await mgr.request('DELETE', `/v1/snapshots/${fromClone.last}`)
    const userSnap = fromBooted.last

    // --- PSS per idle clone, and concurrent creates from one snapshot ---------------------------
    const pssOf = (ids: Set<string>) => {
      const out: number[] = []
      for (const pid of qemuProcessesOf(mgr.storageRoot)) {
        const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')
        if ([...ids].some((id) => cmd.includes(id))) out.push(memOf(pid).pssMb)
      }
      return out
    }
    const cloneShape = { memMb: SHAPE.memMb + 64 }
    const one = await create({ snapshotId: userSnap, ...cloneShape })
    await exec(one.id)
    await sleep(2000)
    const pss1 = pssOf(new Set([one.id]))
    await remove(one.id)
    const [concurrentMs, many] = await timeIt(() => Promise.all(Array.from({ length: CLONES }, () => create({ snapshotId: userSnap, ...cloneShape }))))
    await Promise.all(many.map((vm) => exec(vm.id)))
    await sleep(2000)
    const pssN = pssOf(new Set(many.map((v) => v.id)))
    const distinctIps = new Set(many.map((v) => v.guestIp)).size
    for (const vm of many) await remove(vm.id)
    await mgr.request('DELETE', `/v1/snapshots/${userSnap}`)

    // --- warm pool, as configured by default (empty values are the defaults) --------------------
    await mgr.stop()
    mgr.setEnv({ ENABLE_WARM_POOL: '', WARM_POOL_TARGET: '', WARM_POOL_MAX_VMS: '' })
    await mgr.start()
    const poolReady = () => waitFor('the warm pool', async () => (await mgr.request('GET', '/v1/warm-pool')).body.ready === 1)
    const poolTimes = await createToExec('pool', poolReady)

    // --- cold boot, same shape: seeds and pool off ------------------------------------------------
    await mgr.stop()
    mgr.setEnv({ ENABLE_WARM_POOL: 'false', ENABLE_IMAGE_SEED: 'false' })
    await mgr.start()
    await waitFor('the pool to drain', async () => qemuProcessesOf(mgr.storageRoot).length === 0)
    const coldTimes = await createToExec('boot')

    const createSection = `create -> first exec (${RUNS} runs each, ${SHAPE.cpu} vCPU / ${SHAPE.memMb} MiB, TCG)`
    const cold = { name: 'cold boot', value: median(coldTimes) }
    report.add({ section: createSection, name: 'cold boot (median)', value: median(coldTimes), unit: 'ms', note: `p95 ${pct(coldTimes, 95).toFixed(0)} ms` })
    report.add({ section: createSection, name: 'image seed snapshot, API (median)', value: median(seedTimes), unit: 'ms', baseline: cold, ratio: median(coldTimes) / median(seedTimes), note: `× faster; p95 ${pct(seedTimes, 95).toFixed(0)} ms` })
    report.add({ section: createSection, name: 'warm pool, API: the default configuration\'s path (median)', value: median(poolTimes), unit: 'ms', baseline: cold, ratio: median(coldTimes) / median(poolTimes), note: `× faster; p95 ${pct(poolTimes, 95).toFixed(0)} ms` })
    report.add({ section: createSection, name: 'raw driver resume of the seed files (the floor)', value: median(rawTimes), unit: 'ms', baseline: cold, ratio: median(coldTimes) / median(rawTimes), note: `× faster; p95 ${pct(rawTimes, 95).toFixed(0)} ms` })
    report.add({ section: createSection, name: 'API seed create against the raw floor', value: median(seedTimes), unit: 'ms', baseline: { name: 'raw floor', value: median(rawTimes) }, ratio: median(seedTimes) / median(rawTimes) })
    const snaps = `snapshot of a running VM through the API, 64 MB in /dev/shm (${RUNS} runs)`
    for (const [what, r] of [['booted VM (RAM file copied)', fromBooted], ['seed clone (RAM streamed)', fromClone]] as const) {
      report.add({ section: snaps, name: `${what}: guest paused (median)`, value: median(r.pauses), unit: 'ms', note: `p95 ${pct(r.pauses, 95).toFixed(0)} ms` })
      report.add({ section: snaps, name: `${what}: API call (median)`, value: median(r.calls), unit: 'ms', note: `p95 ${pct(r.calls, 95).toFixed(0)} ms` })
      report.add({ section: snaps, name: `${what}: files`, value: (r.sizes.memoryBytes + r.sizes.stateBytes + r.sizes.diskBytes) / 1e6, unit: 'MB', note: `memory ${(r.sizes.memoryBytes / 1e6).toFixed(0)} MB, state ${(r.sizes.stateBytes / 1e6).toFixed(1)} MB, overlay ${(r.sizes.diskBytes / 1e6).toFixed(1)} MB` })
    }
    const mem = 'host memory and concurrency'
    report.add({ section: mem, name: 'PSS of one idle clone', value: median(pss1), unit: 'MB' })
    report.add({ section: mem, name: `PSS per idle clone with ${CLONES} clones (median)`, value: median(pssN), unit: 'MB', baseline: { name: 'one clone', value: median(pss1) }, ratio: median(pssN) / median(pss1), note: `sum ${pssN.reduce((a, b) => a + b, 0).toFixed(0)} MB` })
    report.add({ section: mem, name: `${CLONES} concurrent creates from one snapshot`, value: concurrentMs, unit: 'ms', note: `${many.length}/${CLONES} succeeded, ${distinctIps} distinct addresses` })
    report.print()
  } finally {
    await mgr.cleanup()
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`)
  process.exit(1)
})
