// The E2B code interpreter through the real `@e2b/code-interpreter` SDK: what a context costs to
// start, and what one runCode costs in a warm context, against the same Python work run as a
// fresh `python3 -c` per call through envd (commands.run), measured in the same run, and the
// transport's floor (commands.run('true')). Usage: node bench/e2b-interpreter.ts [-- --rounds 10]
import { parseArgs } from 'node:util'
import { Sandbox } from '@e2b/code-interpreter'
import { ManagerProcess } from '../packages/manager/test/harness/manager-process.ts'
import { Report } from './lib/report.ts'

const { values: opt } = parseArgs({ options: { rounds: { type: 'string', default: '10' }, json: { type: 'boolean', default: false } } })
const ROUNDS = Number(opt.rounds)

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
async function timed(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await fn()
    out.push(performance.now() - t0)
  }
  return out
}

async function main() {
  const report = new Report('e2b-interpreter')
  const mgr = new ManagerProcess({ LOG_LEVEL: 'error' })
  let sbx: Sandbox | undefined
  try {
    process.stderr.write('starting manager…\n')
    await mgr.start()
    process.env.E2B_API_URL = mgr.baseUrl
    process.env.E2B_SANDBOX_URL = mgr.baseUrl
    process.env.E2B_API_KEY = mgr.apiKey
    sbx = await Sandbox.create({ timeoutMs: 1_800_000 })
    const s = sbx

    const first = await timed(1, () => s.runCode('1+1'))
    report.add({ section: 'contexts', name: 'first runCode (starts the default context)', value: first[0]!, unit: 'ms' })
    const creates = await timed(3, async () => s.removeCodeContext(await s.createCodeContext()))
    report.add({ section: 'contexts', name: 'createCodeContext + remove (median of 3)', value: median(creates), unit: 'ms' })

    const floor = median(await timed(ROUNDS, () => s.commands.run('true')))
    const cold = median(await timed(ROUNDS, () => s.commands.run("python3 -c 'print(1+1)'")))
    const warm = median(await timed(ROUNDS, () => s.runCode('1+1')))
    report.add({ section: 'one call', name: 'commands.run("true") (transport floor)', value: floor, unit: 'ms' })
    report.add({ section: 'one call', name: 'runCode("1+1") in a warm context', value: warm, unit: 'ms', baseline: { name: "commands.run(\"python3 -c 'print(1+1)'\")", value: cold }, ratio: cold / warm, note: 'ratio = fresh python per call / warm context' })
    await s.runCode('import json')
    const state = median(await timed(ROUNDS, () => s.runCode('x = [i * i for i in range(10000)]\nsum(x)')))
    report.add({ section: 'one call', name: 'runCode of a 10k-item list comprehension', value: state, unit: 'ms' })
  } finally {
    if (sbx) await Sandbox.kill(sbx.sandboxId).catch(() => undefined)
    await mgr.cleanup()
  }
  report.print()
}

await main()
