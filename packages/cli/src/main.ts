// sheesh: the run-dat-sheesh command line. Settings come from flags, then the environment
// (RDS_BASE_URL, RDS_API_KEY), then ~/.config/sheesh/config.json ({"baseUrl", "apiKey"}).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { RdsApiError, RdsConnectionError, type ClientOptions } from '@run-dat-sheesh/sdk/source'
import { UsageError, type Command, type OptionSpec } from './command.ts'
import { completion } from './commands/completion.ts'
import { cp } from './commands/cp.ts'
import { exec } from './commands/exec.ts'
import { mcp } from './commands/mcp.ts'
import { image } from './commands/image.ts'
import { logs, snapshot } from './commands/misc.ts'
import { runJs, runTs } from './commands/run.ts'
import { shell } from './commands/shell.ts'
import { vm } from './commands/vm.ts'
import { template } from './commands/template.ts'

export const COMMANDS: Command[] = [vm, exec, shell, runTs, runJs, cp, snapshot, template, logs, image, completion, mcp]

const GLOBAL: OptionSpec = {
  url: { type: 'string' },
  key: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
}

function configFile(): { baseUrl?: string; apiKey?: string } {
  const file = path.join(process.env.XDG_CONFIG_HOME ?? path.join(os.homedir(), '.config'), 'sheesh', 'config.json')
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch {
    return {}
  }
}

function help(cmd?: Command): string {
  if (cmd) return `${cmd.summary}\n\nusage: ${cmd.usage}\n\nglobal options: --url URL  --key KEY  --json  -h/--help`
  return [
    'sheesh: real microVM sandboxes from the command line',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`),
    '',
    'global options: --url URL (RDS_BASE_URL)  --key KEY (RDS_API_KEY)  --json (machine-readable output)  -h/--help',
    'settings also from ~/.config/sheesh/config.json: {"baseUrl": "…", "apiKey": "…"}',
    'sheesh <command> --help for a command\'s options',
  ].join('\n')
}

export async function main(argv: string[]): Promise<number> {
  const name = argv[0]
  const cmd = COMMANDS.find((c) => c.name === name)
  if (!cmd) {
    const wantsHelp = !name || name === 'help' || name === '--help' || name === '-h'
    ;(wantsHelp ? process.stdout : process.stderr).write(`${help()}\n`)
    return wantsHelp ? 0 : 2
  }
  let parsed
  try {
    parsed = parseArgs({ args: argv.slice(1), options: { ...GLOBAL, ...cmd.options }, allowPositionals: true, strict: true })
  } catch (e) {
    process.stderr.write(`sheesh ${cmd.name}: ${(e as Error).message}\n\nusage: ${cmd.usage}\n`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) {
    process.stdout.write(`${help(cmd)}\n`)
    return 0
  }
  const file = configFile()
  const client: ClientOptions = {
    // An empty variable is an unset one.
    baseUrl: (values.url as string | undefined) || process.env.RDS_BASE_URL || file.baseUrl,
    apiKey: (values.key as string | undefined) || process.env.RDS_API_KEY || file.apiKey,
  }
  try {
    const code = await cmd.run(positionals, values, client, (text) => {
      process.stdout.write(`${text}\n`)
    })
    return typeof code === 'number' ? code : 0
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`sheesh ${cmd.name}: ${e.message}\n\nusage: ${cmd.usage}\n`)
      return 2
    }
    if (e instanceof RdsApiError) process.stderr.write(values.json ? `${JSON.stringify({ status: e.status, code: e.code, message: e.message })}\n` : `sheesh: ${e.message} (${e.code}, HTTP ${e.status})\n`)
    else if (e instanceof RdsConnectionError) process.stderr.write(`sheesh: ${e.message}\n`)
    else process.stderr.write(`sheesh: ${(e as Error).message}\n`)
    return 1
  }
}

// Run as the program, not when imported (tests import COMMANDS).
if (process.argv[1] && /sheesh(\.mjs)?$|main\.ts$/.test(process.argv[1])) {
  // The MCP server keeps running after main resolves; every other command's code is its exit.
  const code = await main(process.argv.slice(2))
  if (process.argv[2] !== 'mcp') process.exitCode = code
}
