// File API throughput: MB/s of PUT and GET /v1/vms/:id/files for one file of --mb MiB (random
// bytes), against the raw channel: the same agent routes (fileWrite, fileRead) spoken directly
// over the agent channel of a VM booted through the QEMU driver, with no manager and no HTTP (as
// the raw column of `npm run bench`). API / raw is what the manager's hop costs; the target is
// >= 0.8x. For reference the existing tar.gz routes move the same bytes through the API (the guest
// gzips/gunzips them). Last, the latency of one metadata operation through the long-lived file
// worker (stat) against a process per operation (an exec of `stat`, and of `node -e`, as a per-op
// Node worker would pay), which decided the worker's design.
// Usage: node bench/files-throughput.ts [--mb 64] [--runs 3] [--ops 20]
import { createHash, randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { AgentClient } from '../packages/manager/src/runtime/agent/client.ts'
import { createOverlay } from '../packages/manager/src/runtime/storage/overlay.ts'
import { createQemuDriver } from '../packages/manager/src/runtime/vmm/qemu/driver.ts'
import { ManagerProcess } from '../packages/manager/test/harness/manager-process.ts'
import { rawVmFiles } from './lib/raw-vm-files.ts'
import { median, pct } from './lib/stats.ts'

const { values: opt } = parseArgs({ options: { mb: { type: 'string', default: '64' }, runs: { type: 'string', default: '3' }, ops: { type: 'string', default: '20' } } })
const MB = Number(opt.mb)
const RUNS = Number(opt.runs)
const OPS = Number(opt.ops)
const SIZE = MB * 1024 * 1024

const mbps = (ms: number) => SIZE / 1e6 / (ms / 1000)
// p95 of a rate is its slow end: the 5th percentile of MB/s (the 95th of durations).
const row = (label: string, xs: number[]) => `${label.padEnd(40)} median ${median(xs).toFixed(1).padStart(7)} MB/s   p95 ${pct(xs, 5).toFixed(1).padStart(7)} MB/s   (n=${xs.length})`
const lat = (label: string, xs: number[]) => `${label.padEnd(40)} p50 ${pct(xs, 50).toFixed(1).padStart(8)} ms   p95 ${pct(xs, 95).toFixed(1).padStart(8)} ms   (n=${xs.length})`

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-bench-files-'))
  const file = path.join(dir, 'data.bin')
  fs.writeFileSync(file, randomBytes(SIZE))
  const sha = createHash('sha256').update(fs.readFileSync(file)).digest('hex')
  execFileSync('tar', ['-czf', path.join(dir, 'data.tar.gz'), '-C', dir, 'data.bin'])
  const mgr = new ManagerProcess({ LOG_LEVEL: 'error', UPLOAD_MAX_BODY_BYTES: String(SIZE * 2), UPLOAD_MAX_BYTES: String(SIZE * 2) })
  const cleanups: (() => Promise<void>)[] = []
  try {
    process.stderr.write('starting manager…\n')
    await mgr.start()
    const raw = await rawChannel(mgr, file, sha)
    cleanups.push(raw.close)
    const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [] })
    if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}`)
    const id = r.body.id as string
    const key = { 'x-api-key': mgr.apiKey }
    const url = (p: string) => `${mgr.baseUrl}/v1/vms/${id}${p}`
    const timed = async (f: () => Promise<void>) => {
      const t = performance.now()
      await f()
      return performance.now() - t
    }
    const drain = async (res: Response) => {
      if (!res.ok) throw new Error(`${res.status} ${await res.text()}`)
      const h = createHash('sha256')
      for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) h.update(c)
      return h.digest('hex')
    }
    const put = async () => {
      const res = await fetch(url('/files?path=bench/data.bin'), { method: 'PUT', headers: { ...key, 'content-type': 'application/octet-stream' }, body: fs.createReadStream(file) as unknown as BodyInit, duplex: 'half' } as RequestInit)
      if (res.status !== 204) throw new Error(`PUT ${res.status} ${await res.text()}`)
    }
    const get = async () => {
      if ((await drain(await fetch(url('/files?path=bench/data.bin'), { headers: key }))) !== sha) throw new Error('GET returned other bytes')
    }
    const upload = async () => {
      const res = await fetch(url('/files/upload?dest=/workspace/tar'), { method: 'POST', headers: { ...key, 'content-type': 'application/gzip' }, body: fs.createReadStream(path.join(dir, 'data.tar.gz')) as unknown as BodyInit, duplex: 'half' } as RequestInit)
      if (res.status !== 204) throw new Error(`upload ${res.status} ${await res.text()}`)
    }
    const download = async () => {
      await drain(await fetch(url('/files/download?path=/workspace/bench/data.bin'), { headers: key }))
    }
    const results: Record<string, number[]> = { 'raw channel: fileWrite': [], 'raw channel: fileRead': [], 'PUT /files (file API)': [], 'POST /files/upload (tar.gz baseline)': [], 'GET /files (file API)': [], 'GET /files/download (tar.gz baseline)': [] }
    process.stderr.write(`warming up (${MB} MiB each way)…\n`)
    await put()
    await get()
    await raw.put()
    await raw.get()
    // Interleaved, so that both see the same load on the shared host.
    for (let i = 0; i < RUNS; i++) {
      process.stderr.write(`run ${i + 1}/${RUNS}\n`)
      results['raw channel: fileWrite']!.push(mbps(await timed(raw.put)))
      results['PUT /files (file API)']!.push(mbps(await timed(put)))
      results['POST /files/upload (tar.gz baseline)']!.push(mbps(await timed(upload)))
      results['raw channel: fileRead']!.push(mbps(await timed(raw.get)))
      results['GET /files (file API)']!.push(mbps(await timed(get)))
      results['GET /files/download (tar.gz baseline)']!.push(mbps(await timed(download)))
    }

    const stat: number[] = []
    const execStat: number[] = []
    const execNode: number[] = []
    for (let i = 0; i < OPS; i++) {
      stat.push(await timed(async () => void (await mgr.request('GET', `/v1/vms/${id}/files/stat?path=bench/data.bin`))))
      execStat.push(await timed(async () => void (await mgr.request('POST', `/v1/vms/${id}/exec`, { cmd: 'stat -c %s /workspace/bench/data.bin' }))))
      if (i < Math.min(OPS, 8)) execNode.push(await timed(async () => void (await mgr.request('POST', `/v1/vms/${id}/exec`, { cmd: `node -e "require('fs').statSync('/workspace/bench/data.bin')"` }))))
    }

    console.log(`\nfile API throughput, ${MB} MiB of random bytes, ${RUNS} runs (host ${os.cpus().length} cores, ${process.env.RDS_ACCEL ?? 'accel per manager config'})`)
    for (const [label, xs] of Object.entries(results)) console.log(row(label, xs))
    const ratio = (a: string, b: string) => (median(results[a]!) / median(results[b]!)).toFixed(2)
    console.log(`API / raw channel: write ${ratio('PUT /files (file API)', 'raw channel: fileWrite')}x   read ${ratio('GET /files (file API)', 'raw channel: fileRead')}x`)
    console.log(`file API / tar.gz routes: write ${ratio('PUT /files (file API)', 'POST /files/upload (tar.gz baseline)')}x   read ${ratio('GET /files (file API)', 'GET /files/download (tar.gz baseline)')}x`)
    console.log(`\none metadata operation, ${OPS} times`)
    console.log(lat('GET /files/stat (long-lived file worker)', stat))
    console.log(lat('exec `stat` (a process per operation)', execStat))
    console.log(lat('exec `node -e statSync` (Node per operation)', execNode))
    await mgr.request('DELETE', `/v1/vms/${id}`)
  } finally {
    for (const c of cleanups) await c().catch(() => {})
    await mgr.stop().catch(() => {})
    await mgr.cleanup().catch(() => {})
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

interface RawVm {
  put(): Promise<void>
  get(): Promise<void>
  close(): Promise<void>
}

/** The file routes straight over the agent channel of a VM booted through the driver (no manager). */
async function rawChannel(mgr: ManagerProcess, file: string, sha: string): Promise<RawVm> {
  const images = (await mgr.request('GET', '/v1/images')).body as Array<{ id: string; isDefault: boolean }>
  const imgDir = path.join(mgr.storageRoot, 'images', images.find((i) => i.isDefault)!.id)
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-bench-files-raw-'))
  const driver = createQemuDriver({ qemuBin: 'qemu-system-x86_64', accel: () => 'tcg', instance: 'bench-files' })
  await createOverlay(path.join(d, 'overlay.ext4'), 512 * 1024 * 1024)
  process.stderr.write('booting the raw VM…\n')
  const ram = `/dev/shm/rds-bench-files-raw-${process.pid}.ram`
  const h = await driver.boot({ vmId: 'rawfiles', cpu: 1, memMb: 512, ...rawVmFiles(imgDir, d), memory: { file: ram, shared: true } })
  const agent = new AgentClient(path.join(d, 'c.sock'))
  const close = async () => {
    agent.close()
    await h.kill(500)
    fs.rmSync(ram, { force: true })
    fs.rmSync(d, { recursive: true, force: true })
  }
  try {
    await agent.waitReady(180_000, () => h.isAlive())
  } catch (e) {
    await close()
    throw e
  }
  return {
    put: () => agent.upload('fileWrite', { path: 'bench/data.bin' }, fs.createReadStream(file), 600_000),
    async get() {
      const { body } = await agent.openStream('fileRead', { path: 'bench/data.bin' }, 60_000)
      const hash = createHash('sha256')
      for await (const c of body as AsyncIterable<Buffer>) hash.update(c)
      if (hash.digest('hex') !== sha) throw new Error('raw read returned other bytes')
    },
    close,
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
