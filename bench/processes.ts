// Many concurrent attached processes in one VM: N background processes each attached over a
// WebSocket (the real `ws` client), each echoing what it is sent. Measures the output latency of
// a line typed into one (send -> echo received, host-timed), the manager's RSS with everything
// attached, and the guest agent's RSS. Usage: npm run bench:processes [-- --procs 16 --rounds 10]
import { parseArgs } from 'node:util'
import fs from 'node:fs'
import WebSocket from 'ws'
import { ManagerProcess } from '../packages/manager/test/harness/manager-process.ts'

const { values: opt } = parseArgs({ options: { procs: { type: 'string', default: '16' }, rounds: { type: 'string', default: '10' } } })
const PROCS = Number(opt.procs)
const ROUNDS = Number(opt.rounds)

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024

async function main() {
  const mgr = new ManagerProcess({ LOG_LEVEL: 'error' })
  try {
    process.stderr.write('starting manager and VM…\n')
    await mgr.start()
    const vm = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [] })
    if (vm.status !== 201) throw new Error(`create failed: ${JSON.stringify(vm.body)}`)
    const id = vm.body.id as string
    const rssBefore = rssMb(mgr.pid!)
    // Guest memory in use (MemTotal - MemAvailable): the agent's own /proc entry is hidden from uid 1000.
    const guestUsedMb = async () => {
      const r = await mgr.request('POST', `/v1/vms/${id}/exec`, { cmd: "awk '/MemTotal/ {t=$2} /MemAvailable/ {a=$2} END {print t-a}' /proc/meminfo" })
      return Number(r.body.stdout.trim()) / 1024
    }
    const guestBefore = await guestUsedMb()

    process.stderr.write(`starting and attaching ${PROCS} processes…\n`)
    const t0 = performance.now()
    const pids: number[] = []
    for (let i = 0; i < PROCS; i++) {
      const r = await mgr.request('POST', `/v1/vms/${id}/processes`, { cmd: 'while read -r l; do echo "e:$l"; done', stdin: true, tag: `bench-${i}` })
      if (r.status !== 201) throw new Error(`start failed: ${JSON.stringify(r.body)}`)
      pids.push(r.body.pid)
    }
    const startMs = (performance.now() - t0) / PROCS
    const sockets = await Promise.all(
      pids.map(
        (pid) =>
          new Promise<{ ws: WebSocket; got: string; wait: (s: string) => Promise<void> }>((resolve, reject) => {
            const ws = new WebSocket(`ws://127.0.0.1:${mgr.port}/v1/vms/${id}/processes/${pid}/attach`, { headers: { 'x-api-key': mgr.apiKey } })
            const s = {
              ws,
              got: '',
              waiters: [] as (() => void)[],
              wait(needle: string) {
                return new Promise<void>((r) => {
                  const check = () => (s.got.includes(needle) ? r() : s.waiters.push(check))
                  check()
                })
              },
            }
            ws.on('message', (d: Buffer, bin: boolean) => {
              if (!bin) return
              s.got += d.toString()
              for (const w of s.waiters.splice(0)) w()
            })
            ws.once('open', () => resolve(s))
            ws.once('error', reject)
          }),
      ),
    )

    process.stderr.write('measuring…\n')
    const latencies: number[] = []
    // Round 0 warms up (first read of each bash, first frames of each socket) and is not counted.
    for (let round = 0; round <= ROUNDS; round++) {
      // Every process gets a line at once; each echo is timed on its own.
      await Promise.all(
        sockets.map(async (s, i) => {
          const tag = `r${round}-p${i}`
          const t = performance.now()
          s.ws.send(Buffer.from(`${tag}\n`))
          await s.wait(`e:${tag}\n`)
          if (round > 0) latencies.push(performance.now() - t)
        }),
      )
    }
    const rssAttached = rssMb(mgr.pid!)
    const guestAttached = await guestUsedMb()

    console.log(`processes attached at once         ${PROCS}`)
    console.log(`start (API, per process, serial)   ${startMs.toFixed(0)} ms`)
    console.log(`echo latency p50 / p95             ${pct(latencies, 50).toFixed(0)} / ${pct(latencies, 95).toFixed(0)} ms   (n=${latencies.length}, all ${PROCS} at once per round)`)
    console.log(`manager RSS before / attached      ${rssBefore.toFixed(0)} / ${rssAttached.toFixed(0)} MiB`)
    console.log(`guest memory used before / after   ${guestBefore.toFixed(0)} / ${guestAttached.toFixed(0)} MiB   (${PROCS} bash loops, their rings, the agent)`)
    for (const s of sockets) s.ws.close()
    await mgr.request('DELETE', `/v1/vms/${id}`)
  } finally {
    await mgr.cleanup()
  }
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
