// sheesh run-ts|run-js <id> <file|-> [--arg A]...: a program from a local file (or stdin) run in
// the VM; its output printed, result.set() value printed as JSON, exit code passed through.
import fs from 'node:fs'
import { Sandbox } from '@run-dat-sheesh/sdk/source'
import { need, UsageError, type Command } from '../command.ts'
import { json } from '../output.ts'

function runner(lang: 'ts' | 'js'): Command {
  return {
    name: `run-${lang}`,
    usage: `sheesh run-${lang} <id> <file|-> [--arg VALUE]... [--timeout MS]`,
    summary: lang === 'ts' ? 'Run a TypeScript file (Deno) in a VM' : 'Run a JavaScript file (Node) in a VM',
    options: { arg: { type: 'string', multiple: true }, timeout: { type: 'string' } },
    async run(args, values, client, out) {
      const [id, file] = args
      if (!file) throw new UsageError('the file to run is missing (- reads stdin)')
      const code = fs.readFileSync(file === '-' ? 0 : file, 'utf8')
      const sb = await Sandbox.connect(need(id), client)
      const o = { ...(values.arg ? { args: values.arg as string[] } : {}), ...(values.timeout ? { timeoutMs: Number(values.timeout) } : {}) }
      const r = lang === 'ts' ? await sb.runTs(code, o) : await sb.runJs(code, o)
      if (values.json) out(json(r))
      else {
        process.stdout.write(r.stdout)
        process.stderr.write(r.stderr)
        if (r.result !== undefined) out(json(r.result))
        if (r.error !== undefined) process.stderr.write(`${json(r.error)}\n`)
      }
      return r.exitCode < 0 ? 124 : r.exitCode
    },
  }
}

export const runTs = runner('ts')
export const runJs = runner('js')
