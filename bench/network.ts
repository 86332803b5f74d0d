// Network benchmarks: how soon a new VM's first packet gets out, and TCP throughput between a
// VM and a stand-in outside world (a namespace made here, see test/harness/world.ts). The
// baseline, measured in the same run, is the same transfer inside the VM over its own loopback:
// the guest's TCG cost without the TAP, nftables and the host in the path.
// Usage: npm run bench:network [-- --runs 5 --mb 32]
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { ManagerProcess } from '../packages/manager/test/harness/manager-process.ts'
import { OutsideWorld } from '../packages/manager/test/harness/world.ts'
import { median, pct } from './lib/stats.ts'

const { values: opt } = parseArgs({ options: { runs: { type: 'string', default: '5' }, mb: { type: 'string', default: '32' } } })
const RUNS = Number(opt.runs)
const BYTES = Number(opt.mb) * 1024 * 1024
const GUEST_SCRIPT = fs.readFileSync(path.join(import.meta.dirname, 'guest-net.mjs'), 'utf8')

const mbs = (bps: number) => `${(bps / 1e6).toFixed(1)} MB/s`

async function main() {
  const world = new OutsideWorld('bench')
  await world.start()
  const mgr = new ManagerProcess({ LOG_LEVEL: 'error', DNS_UPSTREAM: world.dns })
  try {
    process.stderr.write('starting manager…\n')
    await mgr.start()
    const exec = async (id: string, cmd: string) => {
      const r = await mgr.request('POST', `/v1/vms/${id}/exec`, { cmd, timeoutMs: 120_000 })
      if (r.status !== 200 || r.body.exitCode !== 0) throw new Error(`exec failed: ${JSON.stringify(r.body)}`)
      return JSON.parse(r.body.stdout)
    }
    const install = (id: string) => exec(id, `cat > /tmp/net.mjs <<'EOF_RDS'\n${GUEST_SCRIPT}\nEOF_RDS\necho 1`)

    const createToPacket: number[] = []
    const firstConnect: number[] = []
    const laterConnect: number[] = []
    let lastId = ''
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now()
      const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [world.serverA] })
      if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}`)
      const id = r.body.id as string
      const created = performance.now() - t0
      await install(id)
      const times = (await exec(id, `node /tmp/net.mjs connect ${world.serverA} ${world.port} 21`)) as number[]
      if (typeof times[0] !== 'number') throw new Error(`connect failed: ${times[0]}`)
      createToPacket.push(created)
      firstConnect.push(times[0])
      laterConnect.push(...times.slice(1))
      process.stderr.write(`  run ${i + 1}: create ${created.toFixed(0)} ms, first connect ${times[0].toFixed(1)} ms, then p50 ${median(times.slice(1)).toFixed(1)} ms\n`)
      if (i < RUNS - 1) await mgr.request('DELETE', `/v1/vms/${id}`)
      else lastId = id
    }

    const down: number[] = []
    const up: number[] = []
    const loopDown: number[] = []
    const loopUp: number[] = []
    for (let i = 0; i < 3; i++) {
      down.push(await exec(lastId, `node /tmp/net.mjs down ${world.url(world.serverA, `/bytes?n=${BYTES}`)}`))
      up.push(await exec(lastId, `node /tmp/net.mjs up ${world.url(world.serverA, '/sink')} ${BYTES}`))
      const l = await exec(lastId, `node /tmp/net.mjs loop ${BYTES}`)
      loopDown.push(l.down)
      loopUp.push(l.up)
      process.stderr.write(`  transfer ${i + 1}: world ↓ ${mbs(down.at(-1)!)} ↑ ${mbs(up.at(-1)!)} | loopback ↓ ${mbs(l.down)} ↑ ${mbs(l.up)}\n`)
    }
    await mgr.request('DELETE', `/v1/vms/${lastId}`)

    const rows = [
      ['create (API, cold boot), median / p95', `${median(createToPacket).toFixed(0)} / ${pct(createToPacket, 95).toFixed(0)} ms`, '', ''],
      ['first TCP connect after create returns, median / p95', `${median(firstConnect).toFixed(1)} / ${pct(firstConnect, 95).toFixed(1)} ms`, `${median(laterConnect).toFixed(1)} / ${pct(laterConnect, 95).toFixed(1)} ms (later connects)`, `${(median(firstConnect) / median(laterConnect)).toFixed(2)}×`],
      [`download ${opt.mb} MiB from the world, median of 3`, mbs(median(down)), `${mbs(median(loopDown))} (guest loopback)`, `${(median(down) / median(loopDown)).toFixed(2)}×`],
      [`upload ${opt.mb} MiB to the world, median of 3`, mbs(median(up)), `${mbs(median(loopUp))} (guest loopback)`, `${(median(up) / median(loopUp)).toFixed(2)}×`],
    ]
    console.log('\n| metric | VM ↔ outside namespace | baseline (same run) | ratio |\n|---|---|---|---|')
    for (const r of rows) console.log(`| ${r.join(' | ')} |`)
  } finally {
    await mgr.cleanup()
    world.stopSync()
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
