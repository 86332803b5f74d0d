// Streamed exec: how soon the first output reaches the client, against the non-streamed twin's
// whole answer, and how fast a streamed command's output flows end to end (guest pipe -> agent ->
// HTTP/2 channel -> manager relay -> HTTP client), all through a real manager process.
// Usage: node bench/stream-first-byte.ts [--runs 10] [--mb 64]
import http from 'node:http'
import { parseArgs } from 'node:util'
import { ManagerProcess } from '../packages/manager/test/harness/manager-process.ts'
import { median, ms, pct } from './lib/stats.ts'

const { values: opt } = parseArgs({ options: { runs: { type: 'string', default: '10' }, mb: { type: 'string', default: '64' } } })
const RUNS = Number(opt.runs)
const MB = Number(opt.mb)

/** One streamed request: ms to the first stdout event and to the end, and the stdout bytes carried. */
function streamed(mgr: ManagerProcess, vm: string, cmd: string): Promise<{ firstMs: number; totalMs: number; bytes: number; events: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    let firstMs = -1
    let bytes = 0
    let events = 0
    let partial = ''
    const req = http.request(`${mgr.baseUrl}/v1/vms/${vm}/exec`, { method: 'POST', headers: { 'x-api-key': mgr.apiKey, 'content-type': 'application/json' } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`))
      res.setEncoding('utf8')
      res.on('data', (c: string) => {
        partial += c
        let nl: number
        while ((nl = partial.indexOf('\n')) >= 0) {
          const e = JSON.parse(partial.slice(0, nl)) as { type: string; data?: string; dataBase64?: string; exitCode?: number }
          partial = partial.slice(nl + 1)
          if (e.type === 'stdout') {
            if (firstMs < 0) firstMs = performance.now() - t0
            events++
            bytes += e.data !== undefined ? Buffer.byteLength(e.data) : Buffer.from(e.dataBase64!, 'base64').length
          }
          if (e.type === 'error' || (e.type === 'exit' && e.exitCode !== 0)) reject(new Error(JSON.stringify(e)))
        }
      })
      res.on('end', () => resolve({ firstMs, totalMs: performance.now() - t0, bytes, events }))
    })
    req.on('error', reject)
    req.end(JSON.stringify({ cmd, stream: true, timeoutMs: 120_000 }))
  })
}

const line = (label: string, xs: number[], unit: (n: number) => string) => `${label.padEnd(52)} median ${unit(median(xs)).padStart(10)}   p95 ${unit(pct(xs, 95)).padStart(10)}   (n=${xs.length})`

async function main() {
  const mgr = new ManagerProcess({ LOG_LEVEL: 'error' })
  process.stderr.write('starting manager (builds the image on first use)…\n')
  await mgr.start()
  let vm = ''
  try {
    const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [] })
    if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}`)
    vm = r.body.id
    const cmd = 'echo hi; sleep 1'
    // Warm both paths once.
    await mgr.exec(vm, cmd)
    await streamed(mgr, vm, cmd)

    const first: number[] = []
    const streamTotal: number[] = []
    const twin: number[] = []
    for (let i = 0; i < RUNS; i++) {
      const s = await streamed(mgr, vm, cmd)
      first.push(s.firstMs)
      streamTotal.push(s.totalMs)
      const t0 = performance.now()
      const b = await mgr.request('POST', `/v1/vms/${vm}/exec`, { cmd })
      if (b.status !== 200 || b.body.stdout !== 'hi\n') throw new Error(`exec failed: ${JSON.stringify(b.body)}`)
      twin.push(performance.now() - t0)
    }

    // Throughput: stdout of `head -c ${MB}M /dev/zero` turned into printable bytes (zeros would
    // travel as \u0000, six bytes of JSON each).
    const rates: number[] = []
    const eventSizes: number[] = []
    const throughputRuns = Math.max(3, Math.min(RUNS, 5))
    for (let i = 0; i < throughputRuns; i++) {
      const s = await streamed(mgr, vm, `head -c ${MB}M /dev/zero | tr '\\0' a`)
      if (s.bytes !== MB * 1024 * 1024) throw new Error(`got ${s.bytes} bytes`)
      rates.push(s.bytes / 1e6 / (s.totalMs / 1000))
      eventSizes.push(s.bytes / s.events / 1024)
    }
    // The brief's own producer, zeros as they are: valid UTF-8, so they travel as text, each NUL
    // as the six characters \u0000 of JSON. A quarter of the size, it is that much slower.
    const zeroMb = Math.max(1, Math.floor(MB / 4))
    const zeroRates: number[] = []
    for (let i = 0; i < throughputRuns; i++) {
      const s = await streamed(mgr, vm, `head -c ${zeroMb}M /dev/zero`)
      if (s.bytes !== zeroMb * 1024 * 1024) throw new Error(`got ${s.bytes} bytes`)
      zeroRates.push(s.bytes / 1e6 / (s.totalMs / 1000))
    }
    const rawRates: number[] = []
    for (let i = 0; i < throughputRuns; i++) {
      // The guest alone: how fast the producer runs into a pipe that is read at once.
      const g = await mgr.exec(vm, `s=$(date +%s%N); head -c ${MB}M /dev/zero | tr '\\0' a > /dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))`)
      rawRates.push((MB * 1024 * 1024) / 1e6 / (Number(g.stdout.trim()) / 1000))
    }

    const mbps = (n: number) => `${n.toFixed(1)} MB/s`
    console.log(`\nstreamed exec, TCG, 1 vCPU / 512 MiB, ${RUNS} runs\n`)
    console.log(line(`first stdout event of streamed "${cmd}"`, first, ms))
    console.log(line(`whole streamed "${cmd}" (to the exit event)`, streamTotal, ms))
    console.log(line(`non-streamed twin, whole answer`, twin, ms))
    console.log(`${'first byte / twin total'.padEnd(52)} median ${(median(first) / median(twin)).toFixed(3).padStart(10)}`)
    console.log(line(`streamed throughput, ${MB} MiB of stdout`, rates, mbps))
    console.log(line(`streamed throughput, ${zeroMb} MiB of NUL bytes (6x in JSON)`, zeroRates, mbps))
    console.log(line(`mean stdout event size`, eventSizes, (n) => `${n.toFixed(1)} KiB`))
    console.log(line(`the producer alone in the guest (to /dev/null)`, rawRates, mbps))
  } finally {
    if (vm) await mgr.request('DELETE', `/v1/vms/${vm}`).catch(() => {})
    await mgr.cleanup()
  }
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
