// One table per bench script, and the same figures machine-readably with `--json`: each row has
// a name, the measured value, its unit and, where the script measured one in the same run, the
// baseline it is compared against and the ratio. Progress goes to stderr as rows arrive so a long
// run shows where it is; the final table (or JSON document) is the only thing on stdout.
import os from 'node:os'

export interface Figure {
  section: string
  name: string
  value: number
  unit: string
  baseline?: { name: string; value: number }
  /** value / baseline, or baseline / value for "faster" figures: as the row says. */
  ratio?: number
  note?: string
}

const fmt = (v: number, unit: string): string => {
  if (unit === 'ms') return `${v.toFixed(v < 10 ? 1 : 0)} ms`
  if (unit === 'MB/s') return `${v.toFixed(1)} MB/s`
  if (unit === 'MB') return `${v.toFixed(0)} MB`
  return `${Number.isInteger(v) ? v : v.toFixed(2)}${unit ? ` ${unit}` : ''}`
}

export class Report {
  readonly figures: Figure[] = []
  readonly json: boolean
  readonly script: string

  constructor(script: string, argv: readonly string[] = process.argv.slice(2)) {
    this.script = script
    this.json = argv.includes('--json')
  }

  add(f: Figure): void {
    this.figures.push(f)
    const base = f.baseline ? ` | ${f.baseline.name} ${fmt(f.baseline.value, f.unit)}` : ''
    const ratio = f.ratio !== undefined ? ` | ${f.ratio.toFixed(2)}×` : ''
    process.stderr.write(`  [${f.section}] ${f.name}: ${fmt(f.value, f.unit)}${base}${ratio}\n`)
  }

  /** Prints the figures: a JSON document with `--json`, else one markdown table per section. */
  print(): void {
    const machine = { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '', memGiB: Math.round(os.totalmem() / 2 ** 30), loadavg: os.loadavg(), at: new Date().toISOString() }
    if (this.json) {
      console.log(JSON.stringify({ script: this.script, machine, figures: this.figures }, null, 2))
      return
    }
    console.log(`\nmachine: ${machine.cpus} × ${machine.model}, ${machine.memGiB} GiB, load ${machine.loadavg.map((l) => l.toFixed(1)).join(' ')}, ${machine.at}`)
    for (const section of [...new Set(this.figures.map((f) => f.section))]) {
      const rows = this.figures.filter((f) => f.section === section).map((f) => [f.name, fmt(f.value, f.unit), f.baseline ? `${f.baseline.name}: ${fmt(f.baseline.value, f.unit)}` : '', f.ratio !== undefined ? `${f.ratio.toFixed(2)}×` : '', f.note ?? ''])
      const head = ['metric', 'value', 'baseline (same run)', 'ratio', 'note']
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
      const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`
      console.log(`\n### ${section}\n`)
      console.log(line(head))
      console.log(line(widths.map((w) => '-'.repeat(w))))
      for (const r of rows) console.log(line(r))
    }
  }
}
