// Where the time of a tar.gz transfer goes inside the guest: each step of the upload and download
// paths timed on its own, as the sandbox user, on the same --mb MiB of random bytes (the figures
// behind docs/benchmarks.md, "Issue 18 — transfers"). The baseline of each step is reading the
// bytes with `cat`, measured in the same run. The API and raw-channel rows are bench/run.ts's.
// Usage: node bench/transfers.ts [--mb 16] [--runs 3] [--json]
import { parseArgs } from 'node:util'
import { ManagerProcess } from '../packages/manager/test/harness/manager-process.ts'
import { Report } from './lib/report.ts'
import { median } from './lib/stats.ts'

const { values: opt } = parseArgs({ options: { mb: { type: 'string', default: '16' }, runs: { type: 'string', default: '3' }, json: { type: 'boolean', default: false } } })
const MB = Number(opt.mb)
const RUNS = Number(opt.runs)

/** One step per row: what the upload or download path does with the archive in the guest. */
const STEPS: [string, string][] = [
  ['cat blob > /dev/null (baseline: reading the bytes)', 'cat blob >/dev/null'],
  ['cp to the disk (a spool write + read back)', 'cp blob spool && cat spool >/dev/null && rm spool'],
  ['gzip -6 (tar -czf, the download before)', 'gzip -6 -c blob >/dev/null'],
  ['gzip -1 (the download now)', 'gzip -1 -c blob >/dev/null'],
  ['gunzip (one decompression pass)', 'gzip -dc b.tgz >/dev/null'],
  ['tar -cf (plain tar download)', 'tar -cf - blob >/dev/null'],
  ['tar -xzf (extract a tar.gz)', 'rm -rf x && mkdir x && tar -xzf b.tgz -C x'],
  ['tar -xf (extract a plain tar)', 'rm -rf x && mkdir x && tar -xf b.tar -C x'],
  ['node: zlib gunzip (the agent\'s check, without Node\'s start)', 'node -e "require(\'zlib\').gunzipSync(require(\'fs\').readFileSync(\'b.tgz\'))"'],
  ['node -e 0 (Node\'s start, subtracted above)', 'node -e 0'],
]

async function main() {
  const mgr = new ManagerProcess({ LOG_LEVEL: 'error' })
  process.stderr.write('starting manager (builds the image on first use)…\n')
  await mgr.start()
  const report = new Report('transfers')
  try {
    const c = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [] })
    if (c.status !== 201) throw new Error(JSON.stringify(c.body))
    const id = c.body.id as string
    const sh = async (cmd: string): Promise<string> => {
      const r = await mgr.request('POST', `/v1/vms/${id}/exec`, { cmd, timeoutMs: 120_000 })
      if (r.status !== 200 || r.body.exitCode !== 0) throw new Error(`${cmd}: ${JSON.stringify(r.body)}`)
      return r.body.stdout as string
    }
    await sh(`head -c ${MB * 1024 * 1024} /dev/urandom > blob && tar -czf b.tgz blob && tar -cf b.tar blob`)
    const timeOf = async (cmd: string): Promise<number> => Number((await sh(`s=$(date +%s%N); ${cmd}; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))`)).trim())
    const bytes = MB * 1024 * 1024
    const times = new Map<string, number[]>()
    for (let i = 0; i < RUNS; i++) {
      for (const [name, cmd] of STEPS) times.set(name, [...(times.get(name) ?? []), await timeOf(cmd)])
    }
    const base = median(times.get(STEPS[0]![0])!)
    const nodeStart = median(times.get(STEPS.at(-1)![0])!)
    for (const [name] of STEPS) {
      let ms = median(times.get(name)!)
      if (name.startsWith('node: ')) ms -= nodeStart
      if (name.startsWith('node -e 0')) {
        report.add({ section: 'guest steps', name, value: ms, unit: 'ms' })
        continue
      }
      const rate = bytes / 1e6 / (ms / 1000)
      report.add({ section: 'guest steps', name: `${name}, ${MB} MiB`, value: rate, unit: 'MB/s', baseline: { name: 'cat', value: bytes / 1e6 / (base / 1000) }, ratio: base / ms, note: `${ms} ms median of ${RUNS}` })
    }
    await mgr.request('DELETE', `/v1/vms/${id}`)
  } finally {
    await mgr.cleanup()
  }
  report.print()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
