// Benchmarks of the foundation, printed as a table. Baselines are measured in the same run:
// the "raw" column talks to a VM booted directly through the QEMU driver and the agent
// channel (no manager, no HTTP), the "API" column goes through a real manager process.
// Usage: node bench/run.ts [--runs 5 --execs 200 --mb 16 --calls 20 --transfers 3] [--only-run] [--json]
// (--only-run: just the run-ts / run-js section, on one VM of the seed shape; transfers in a few
// minutes: --runs 1 --execs 5 --mb 16)
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { parseArgs } from 'node:util'
import { ManagerProcess, qemuProcessesOf } from '../packages/manager/test/harness/manager-process.ts'
import { AgentClient } from '../packages/manager/src/runtime/agent/client.ts'
import { createQemuDriver } from '../packages/manager/src/runtime/vmm/qemu/driver.ts'
import { createOverlay } from '../packages/manager/src/runtime/storage/overlay.ts'
import { Report } from './lib/report.ts'
import { rawVmFiles } from './lib/raw-vm-files.ts'
import { median, memOf, pct, timeIt } from './lib/stats.ts'
import { warmRuntimePid } from './lib/warm-runtime.ts'

const { values: opt } = parseArgs({ options: { runs: { type: 'string', default: '5' }, execs: { type: 'string', default: '200' }, mb: { type: 'string', default: '16' }, calls: { type: 'string', default: '20' }, transfers: { type: 'string', default: '3' }, 'only-run': { type: 'boolean', default: false }, json: { type: 'boolean', default: false } } })
const RUNS = Number(opt.runs)
const EXECS = Number(opt.execs)
const MB = Number(opt.mb)
const CALLS = Number(opt.calls)
/** Timed rounds of each transfer (after one untimed round). */
const TRANSFERS = Number(opt.transfers)

const report = new Report('run')
/** An API figure against the raw floor (driver + channel, no manager) measured in the same run. */
const vsRaw = (section: string, name: string, unit: string, raw: number, api: number, note?: string) =>
  report.add({ section, name, value: note ? 0 : api, unit, baseline: { name: 'raw driver + channel', value: raw }, ratio: note ? undefined : api / raw, note })

function payload(): { gz: Buffer; tar: Buffer; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-bench-'))
  fs.writeFileSync(path.join(dir, 'blob.bin'), crypto.randomBytes(MB * 1024 * 1024))
  return { gz: execFileSync('tar', ['-czf', '-', '-C', dir, '.'], { maxBuffer: 1 << 30 }), tar: execFileSync('tar', ['-cf', '-', '-C', dir, '.'], { maxBuffer: 1 << 30 }), dir }
}

type Transfer = 'upload' | 'download' | 'uploadTar' | 'downloadTar'

/**
 * MB/s of each transfer, the median of TRANSFERS timed rounds after one untimed round: the first
 * transfer of a kind in a VM also pays for translating its code paths, which is not its speed.
 */
async function transferRates(bytes: { gz: number; tar: number }, run: Record<Transfer, (round: number) => Promise<unknown>>): Promise<Record<Transfer, number>> {
  const times: Record<Transfer, number[]> = { upload: [], download: [], uploadTar: [], downloadTar: [] }
  for (let round = 0; round <= TRANSFERS; round++) {
    for (const k of ['upload', 'download', 'uploadTar', 'downloadTar'] as const) {
      const [t] = await timeIt(() => run[k](round))
      if (round > 0) times[k].push(t)
    }
  }
  const rate = (k: Transfer) => (k.endsWith('Tar') ? bytes.tar : bytes.gz) / 1e6 / (median(times[k]) / 1000)
  return { upload: rate('upload'), download: rate('download'), uploadTar: rate('uploadTar'), downloadTar: rate('downloadTar') }
}

async function main() {
  const { gz, tar, dir: payloadDir } = payload()
  // The default body limit (10 MiB, as the original) is below the payload: a 413 is not a transfer.
  const mgr = new ManagerProcess({ LOG_LEVEL: 'error', UPLOAD_MAX_BODY_BYTES: String(2 * gz.length) })
  process.stderr.write('starting manager (builds the image on first use)…\n')
  await mgr.start()
  if (opt['only-run']) {
    try {
      const c = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [] })
      if (c.status !== 201) throw new Error(JSON.stringify(c.body))
      await benchRuns(mgr, c.body.id)
      await mgr.request('DELETE', `/v1/vms/${c.body.id}`)
    } finally {
      fs.rmSync(payloadDir, { recursive: true, force: true })
      await mgr.cleanup()
    }
    return report.print()
  }
  try {
    const images = (await mgr.request('GET', '/v1/images')).body as Array<{ id: string; isDefault: boolean }>
    const imgDir = path.join(mgr.storageRoot, 'images', images.find((i) => i.isDefault)!.id)

    // --- raw: driver + agent channel, no manager -------------------------------------
    const rawDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-raw-'))
    const driver = createQemuDriver({ qemuBin: 'qemu-system-x86_64', accel: () => 'tcg', instance: 'bench' })
    const rawBoots: number[] = []
    const rawExec: number[] = []
    let rawUp = 0
    let rawDown = 0
    let rawUpTar = 0
    let rawDownTar = 0
    for (let i = 0; i < RUNS; i++) {
      const d = path.join(rawDir, `vm${i}`)
      fs.mkdirSync(d)
      await createOverlay(path.join(d, 'overlay.ext4'), 512 * 1024 * 1024)
      const t0 = performance.now()
      const h = await driver.boot({ vmId: `raw${i}`, cpu: 1, memMb: 512, ...rawVmFiles(imgDir, d), memory: { file: `/dev/shm/rds-bench-raw${i}.ram`, shared: true } })
      // The guest set up as a manager sets it up under TCG (SANDBOX_ASLR=auto): the user's
      // processes without address-space randomisation, so the floor runs the same guest code.
      const agent = new AgentClient(path.join(d, 'c.sock'), async (call) => void (await call('init', { unixTimeMs: Date.now(), entropy: '', userAslr: false }, 15_000)))
      await agent.waitReady(120_000, () => h.isAlive())
      await agent.call('exec', { cmd: 'true' }, 60_000)
      rawBoots.push(performance.now() - t0)
      if (i === RUNS - 1) {
        for (let j = 0; j < EXECS; j++) rawExec.push((await timeIt(() => agent.call('exec', { cmd: 'true' }, 60_000)))[0])
        const raw = await transferRates({ gz: gz.length, tar: tar.length }, {
          upload: (i) => agent.upload('upload', { dest: `/workspace/b${i}` }, Readable.from(gz), 600_000),
          download: async (i) => {
            for await (const _ of await agent.download({ path: `/workspace/b${i}` }, 600_000));
          },
          uploadTar: (i) => agent.upload('upload', { dest: `/workspace/t${i}` }, Readable.from(tar), 600_000),
          downloadTar: async (i) => {
            for await (const _ of await agent.download({ path: `/workspace/t${i}`, format: 'tar' }, 600_000));
          },
        })
        ;({ upload: rawUp, download: rawDown, uploadTar: rawUpTar, downloadTar: rawDownTar } = raw)
      }
      agent.close()
      await h.kill(500)
      fs.rmSync(`/dev/shm/rds-bench-raw${i}.ram`, { force: true })
    }
    fs.rmSync(rawDir, { recursive: true, force: true })

    // --- API: a real manager process ----------------------------------------------------
    const apiBoots: number[] = []
    let vmId = ''
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now()
      const c = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [] })
      if (c.status !== 201) throw new Error(JSON.stringify(c.body))
      await mgr.request('POST', `/v1/vms/${c.body.id}/exec`, { cmd: 'true' })
      apiBoots.push(performance.now() - t0)
      if (i < RUNS - 1) await mgr.request('DELETE', `/v1/vms/${c.body.id}`)
      else vmId = c.body.id
    }
    const apiExec: number[] = []
    for (let j = 0; j < EXECS; j++) apiExec.push((await timeIt(() => mgr.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'true' })))[0])
    const failed: Record<string, string> = {}
    // A failed transfer is a figure's note, not the end of the run (the other rows still count).
    const checked = (name: string, want: number) => async (r: Promise<{ status: number; body: unknown }>) => {
      const { status, body } = await r
      if (status !== want) failed[name] = `failed: ${status} ${(body as { code?: string })?.code ?? ''}`
    }
    const api = await transferRates({ gz: gz.length, tar: tar.length }, {
      upload: (i) => checked('upload', 204)(mgr.request('POST', `/v1/vms/${vmId}/files/upload?dest=/workspace/b${i}`, new Uint8Array(gz), { 'content-type': 'application/gzip' })),
      download: (i) => checked('download', 200)(mgr.request('GET', `/v1/vms/${vmId}/files/download?path=/workspace/b${i}`)),
      uploadTar: (i) => checked('uploadTar', 204)(mgr.request('POST', `/v1/vms/${vmId}/files/upload?dest=/workspace/t${i}`, new Uint8Array(tar), { 'content-type': 'application/x-tar' })),
      downloadTar: (i) => checked('downloadTar', 200)(mgr.request('GET', `/v1/vms/${vmId}/files/download?path=/workspace/t${i}&format=tar`)),
    })
    const { upload: apiUp, download: apiDown, uploadTar: apiUpTar, downloadTar: apiDownTar } = api
    const pid = qemuProcessesOf(mgr.storageRoot)[0]!
    await new Promise((r) => setTimeout(r, 2000))
    const mem = memOf(pid)

    vsRaw('foundation', `cold create → first exec, median of ${RUNS}`, 'ms', pct(rawBoots, 50), pct(apiBoots, 50))
    vsRaw('foundation', `cold create → first exec, p95 of ${RUNS}`, 'ms', pct(rawBoots, 95), pct(apiBoots, 95))
    vsRaw('foundation', `exec \`true\` p50 (${EXECS})`, 'ms', pct(rawExec, 50), pct(apiExec, 50))
    vsRaw('foundation', `exec \`true\` p95 (${EXECS})`, 'ms', pct(rawExec, 95), pct(apiExec, 95))
    vsRaw('foundation', `upload ${MB} MiB tar.gz (random data), median of ${TRANSFERS}`, 'MB/s', rawUp, apiUp, failed.upload)
    vsRaw('foundation', `download ${MB} MiB tar.gz (random data), median of ${TRANSFERS}`, 'MB/s', rawDown, apiDown, failed.download)
    vsRaw('foundation', `upload ${MB} MiB plain tar (random data), median of ${TRANSFERS}`, 'MB/s', rawUpTar, apiUpTar, failed.uploadTar)
    vsRaw('foundation', `download ${MB} MiB plain tar (format=tar), median of ${TRANSFERS}`, 'MB/s', rawDownTar, apiDownTar, failed.downloadTar)
    report.add({ section: 'foundation', name: 'QEMU RSS, idle VM after the run (512 MiB guest)', value: mem.rssMb, unit: 'MB' })
    report.add({ section: 'foundation', name: 'QEMU PSS, idle VM after the run (512 MiB guest)', value: mem.pssMb, unit: 'MB' })
    await benchRuns(mgr, vmId)
    await mgr.request('DELETE', `/v1/vms/${vmId}`)
  } finally {
    fs.rmSync(payloadDir, { recursive: true, force: true })
    await mgr.cleanup()
  }
  report.print()
}

/**
 * run-ts / run-js of a one-line program through the API: the default (a warm runtime serves the
 * call) against `warm: false` (a fresh runtime per call) in the same VM and run. Calls are spaced
 * as an agent's are: each waits until the VM's warm runtime is up again (not timed), and the cold
 * calls get the same pause. Also: what the parts of a cold start cost, from exec, and what a warm
 * runtime costs in guest memory.
 */
async function benchRuns(mgr: ManagerProcess, vmId: string): Promise<void> {
  const exec = async (cmd: string) => (await mgr.request('POST', `/v1/vms/${vmId}/exec`, { cmd, timeoutMs: 120_000 })).body as { stdout: string; exitCode: number }
  const timeExec = async (cmd: string, n: number) => {
    // One untimed call first: the first start of a program in a VM also translates its code.
    await exec(cmd)
    const xs: number[] = []
    for (let i = 0; i < n; i++) xs.push((await timeIt(() => exec(cmd)))[0])
    return pct(xs, 50)
  }
  const warmPid = (runtime: 'deno' | 'node') => warmRuntimePid(mgr, vmId, runtime)
  const section = 'issue 18 — warm run-ts / run-js'
  const n = Math.max(3, Math.round(CALLS / 4))
  const floor = await timeExec('true', n)
  await exec("printf '' > /tmp/rds-empty.js; printf 'const x: number = 1\\n' > /tmp/rds-one.ts")
  const denoJs = await timeExec('deno run --quiet /tmp/rds-empty.js', n)
  const denoTs = await timeExec('deno run --quiet /tmp/rds-one.ts', n)
  const nodeJs = await timeExec('node /tmp/rds-empty.js', n)
  report.add({ section, name: `cold start breakdown: exec \`true\` (channel + spawn floor) p50 of ${n}`, value: floor, unit: 'ms' })
  report.add({ section, name: 'cold start breakdown: Deno start + exit (empty .js), over the floor', value: denoJs - floor, unit: 'ms' })
  report.add({ section, name: 'cold start breakdown: TypeScript transpile of a one-line .ts, over the empty .js', value: denoTs - denoJs, unit: 'ms' })
  report.add({ section, name: 'cold start breakdown: Node start + exit (empty .js), over the floor', value: nodeJs - floor, unit: 'ms' })

  for (const [route, runtime, code] of [['run-ts', 'deno', 'result.set(1 + 1)'], ['run-js', 'node', 'result.set(1 + 1)']] as const) {
    const call = async (warm: boolean) => {
      const [t, r] = await timeIt(() => mgr.request('POST', `/v1/vms/${vmId}/${route}`, { code, ...(warm ? {} : { warm: false }) }))
      if (r.status !== 200 || r.body.result !== 2) throw new Error(`${route} failed: ${JSON.stringify(r.body)}`)
      return t
    }
    await call(true)
    const cold: number[] = []
    const warm: number[] = []
    for (let i = 0; i < CALLS; i++) {
      await warmPid(runtime)
      cold.push(await call(false))
      await warmPid(runtime)
      warm.push(await call(true))
    }
    for (const p of [50, 95]) {
      const base = pct(cold, p)
      const v = pct(warm, p)
      report.add({ section, name: `${route} one-line program p${p} (${CALLS} calls)`, value: v, unit: 'ms', baseline: { name: 'cold (warm: false)', value: base }, ratio: v / base })
    }
    const pid = await warmPid(runtime)
    const sm = await exec(`cat /proc/${pid}/smaps_rollup`)
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(sm.stdout)?.[1] ?? 0) / 1024
    report.add({ section, name: `guest memory of a waiting warm ${runtime} (PSS / RSS)`, value: kb('Pss'), unit: 'MB', note: `RSS ${kb('Rss').toFixed(1)} MB` })
  }
  report.add({ section, name: 'load average (1 min) at the end', value: os.loadavg()[0]!, unit: '' })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
