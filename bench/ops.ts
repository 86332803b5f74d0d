// What the operations layer costs per request and per probe: GET /v1/vms through the whole app
// (request id, HTTP metrics, auth) with RATE_LIMIT_PER_MIN off and on, GET /ready, and a
// GET /metrics scrape with VMs present. In-process managers on the fake VMM (no QEMU: the
// numbers are the manager's own work), driven through app.inject. Needs root (each manager
// makes its network namespace, which it removes at the end).
// Usage: node bench/ops.ts [--requests 2000] [--vms 10]
import { parseArgs } from 'node:util'
import { FakeManager } from '../packages/manager/test/harness/fake-manager.ts'
import { median, pct } from './lib/stats.ts'

const { values: opt } = parseArgs({ options: { requests: { type: 'string', default: '2000' }, vms: { type: 'string', default: '10' } } })
const REQUESTS = Number(opt.requests)
const VMS = Number(opt.vms)

/** A duration in ms, shown in µs below 1 ms. */
const us = (n: number) => (n < 1 ? `${(n * 1000).toFixed(0)} µs` : `${n.toFixed(1)} ms`)

/** Times `n` sequential calls of `f` (after a warm-up): median and p99 in ms. */
async function timed(n: number, f: () => Promise<unknown>): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < Math.min(200, n); i++) await f()
  const xs: number[] = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await f()
    xs.push(performance.now() - t)
  }
  return { p50: median(xs), p99: pct(xs, 99) }
}

async function main() {
  const rows: string[][] = []
  const off = await FakeManager.start()
  // A limit no run of this bench reaches: every request is counted, none refused.
  const on = await FakeManager.start({ env: { RATE_LIMIT_PER_MIN: String(1_000_000_000) } })
  try {
    for (const [name, m] of [['RATE_LIMIT_PER_MIN off', off], ['RATE_LIMIT_PER_MIN on', on]] as const) {
      const t = await timed(REQUESTS, async () => {
        const r = await m.app.inject({ method: 'GET', url: '/v1/vms', headers: { 'x-api-key': m.apiKey } })
        if (r.statusCode !== 200) throw new Error(`GET /v1/vms: ${r.statusCode}`)
      })
      rows.push([`GET /v1/vms (no VMs), ${name}`, us(t.p50), us(t.p99)])
    }
    const health = await timed(REQUESTS, () => off.app.inject({ method: 'GET', url: '/health' }))
    rows.push(['GET /health', us(health.p50), us(health.p99)])
    const ready = await timed(Math.min(REQUESTS, 500), async () => {
      const r = await off.app.inject({ method: 'GET', url: '/ready' })
      if (r.statusCode !== 200) throw new Error(`GET /ready: ${r.statusCode} ${r.body}`)
    })
    rows.push(['GET /ready', us(ready.p50), us(ready.p99)])
    const ids: string[] = []
    for (let i = 0; i < VMS; i++) {
      const r = await off.api('POST', '/v1/vms', { cpu: 1, memMb: 128, allowIps: [] })
      if (r.status !== 201) throw new Error(`create: ${JSON.stringify(r.body)}`)
      ids.push(r.body.id)
    }
    let bytes = 0
    const scrape = await timed(Math.min(REQUESTS, 500), async () => {
      const r = await off.app.inject({ method: 'GET', url: '/metrics', headers: { 'x-api-key': off.apiKey } })
      bytes = r.rawPayload.length
    })
    rows.push([`GET /metrics (${VMS} VMs, ${(bytes / 1024).toFixed(1)} KiB)`, us(scrape.p50), us(scrape.p99)])
    for (const id of ids) await off.api('DELETE', `/v1/vms/${id}`)
  } finally {
    await Promise.all([off.close(), on.close()])
  }
  const head = ['request (app.inject, sequential)', 'p50', 'p99']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`
  console.log([line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n'))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
