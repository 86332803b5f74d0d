// Preview proxy throughput: MB/s of a download (GET, the guest server streams --mb MiB) and an
// upload (POST of --mb MiB, the guest counts it) through the manager's preview host
// (<port>-<vmId>.localhost, API key), against a direct connection from the host to the VM's
// address and port (the same path the proxy's upstream takes, without the manager). proxy / direct
// is what the manager's hop costs. Interleaved runs, first of each discarded as warm-up.
// Usage: npm run bench:preview [-- --mb 32 --runs 5]
import http from 'node:http'
import { parseArgs } from 'node:util'
import { ManagerProcess } from '../packages/manager/test/harness/manager-process.ts'
import { PREVIEW_GUEST_SERVER } from '../packages/manager/test/harness/preview-guest-server.ts'
import { median } from './lib/stats.ts'

const { values: opt } = parseArgs({ options: { mb: { type: 'string', default: '32' }, runs: { type: 'string', default: '5' } } })
const MB = Number(opt.mb)
const RUNS = Number(opt.runs)
const BYTES = MB * 1024 * 1024
const PORT = 8000

/** One request, its body drained or sent; resolves with the milliseconds from start to the end of the answer. */
function transfer(o: { host: string; port: number; hostHeader?: string; headers?: Record<string, string>; method: 'GET' | 'POST'; path: string; body?: Buffer }): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now()
    let n = 0
    const req = http.request({ host: o.host, port: o.port, method: o.method, path: o.path, headers: { ...(o.hostHeader ? { host: o.hostHeader } : {}), ...o.headers }, agent: false }, (res) => {
      res.on('data', (c: Buffer) => (n += c.length))
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`))
        if (o.method === 'GET' && n !== BYTES) return reject(new Error(`got ${n} bytes, wanted ${BYTES}`))
        resolve(performance.now() - t)
      })
    })
    req.on('error', reject)
    req.end(o.body)
  })
}

const mbps = (ms: number) => BYTES / 1e6 / (ms / 1000)

async function main() {
  const mgr = new ManagerProcess({ LOG_LEVEL: 'error' })
  try {
    process.stderr.write('starting manager and VM…\n')
    await mgr.start()
    const vm = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [] })
    if (vm.status !== 201) throw new Error(`create failed: ${JSON.stringify(vm.body)}`)
    const id = vm.body.id as string
    const guestIp = vm.body.guestIp as string
    await mgr.writeFile(id, '/workspace/preview-server.js', PREVIEW_GUEST_SERVER)
    const p = await mgr.request('POST', `/v1/vms/${id}/processes`, { args: ['deno', 'run', '--allow-net', '/workspace/preview-server.js', String(PORT)] })
    if (p.status !== 201) throw new Error(`server start failed: ${JSON.stringify(p.body)}`)
    const previewHost = `${PORT}-${id}.localhost:${mgr.port}`
    const viaProxy = { host: '127.0.0.1', port: mgr.port, hostHeader: previewHost, headers: { 'x-api-key': mgr.apiKey } }
    const direct = { host: guestIp, port: PORT }
    const answers = () => new Promise<true | undefined>((resolve) => http.get({ ...direct, path: '/', agent: false }, (res) => (res.resume(), resolve(res.statusCode === 200 || undefined))).on('error', () => resolve(undefined)))
    await mgr.waitFor('the guest server', answers, 240_000)
    const body = Buffer.alloc(BYTES, 120)
    const results: Record<string, number[]> = { 'download proxy': [], 'download direct': [], 'upload proxy': [], 'upload direct': [] }
    process.stderr.write(`measuring ${RUNS} runs of ${MB} MiB each way…\n`)
    for (let i = 0; i <= RUNS; i++) {
      const d1 = await transfer({ ...viaProxy, method: 'GET', path: `/bytes?mb=${MB}` })
      const d2 = await transfer({ ...direct, method: 'GET', path: `/bytes?mb=${MB}` })
      const u1 = await transfer({ ...viaProxy, method: 'POST', path: '/upload', body })
      const u2 = await transfer({ ...direct, method: 'POST', path: '/upload', body })
      if (i === 0) continue
      results['download proxy']!.push(mbps(d1))
      results['download direct']!.push(mbps(d2))
      results['upload proxy']!.push(mbps(u1))
      results['upload direct']!.push(mbps(u2))
    }
    for (const [label, xs] of Object.entries(results)) console.log(`${label.padEnd(18)} median ${median(xs).toFixed(1).padStart(7)} MB/s   (n=${xs.length}, ${MB} MiB each)`)
    for (const dir of ['download', 'upload']) console.log(`${dir} proxy / direct  ${(median(results[`${dir} proxy`]!) / median(results[`${dir} direct`]!)).toFixed(2)}`)
    await mgr.request('DELETE', `/v1/vms/${id}`)
  } finally {
    await mgr.cleanup()
  }
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
