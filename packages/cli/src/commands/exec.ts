// sheesh exec <id> [--cwd DIR] [--env K=V]... [--timeout MS] -- <cmd...>: the command's output on
// our stdout/stderr and its exit code as ours, so scripts can use it like a local command.
import { Sandbox } from '@run-dat-sheesh/sdk/source'
import { need, UsageError, type Command } from '../command.ts'
import { json } from '../output.ts'

export const exec: Command = {
  name: 'exec',
  usage: 'sheesh exec <id> [--cwd DIR] [--env KEY=value]... [--timeout MS] -- <command...>',
  summary: 'Run a shell command in a VM; its exit code becomes sheesh\'s',
  options: { cwd: { type: 'string' }, env: { type: 'string', multiple: true }, timeout: { type: 'string' } },
  async run(args, values, client, out) {
    const [id, ...cmd] = args
    if (cmd.length === 0) throw new UsageError('the command to run is missing (after --)')
    const env = Object.fromEntries(((values.env as string[] | undefined) ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]))
    const sb = await Sandbox.connect(need(id), client)
    // One argument is taken as a shell line as it is; several are the words of one command.
    const line = cmd.length === 1 ? cmd[0]! : cmd.map(shellQuote).join(' ')
    const r = await sb.exec(line, { ...(values.cwd ? { cwd: values.cwd as string } : {}), ...(Object.keys(env).length ? { env } : {}), ...(values.timeout ? { timeoutMs: Number(values.timeout) } : {}) })
    if (values.json) out(json(r))
    else {
      process.stdout.write(r.stdout)
      process.stderr.write(r.stderr)
    }
    return r.exitCode < 0 ? 124 : r.exitCode
  },
}

export const shellQuote = (word: string) => (/^[A-Za-z0-9_\/.,:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`)
