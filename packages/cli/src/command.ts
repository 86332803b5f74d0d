// What a sheesh command is: its name, usage line, options (node:util parseArgs) and its run.
import type { ClientOptions } from '@run-dat-sheesh/sdk/source'

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>

export interface Command {
  name: string
  usage: string
  summary: string
  options?: OptionSpec
  /** `args`: positionals after the command name; `out`: prints a line (or block) to stdout. Resolves to the exit code (0 when undefined). */
  run(args: string[], values: Record<string, unknown>, client: ClientOptions, out: (text: string) => void): Promise<number | void>
}

/** A mistake in how the command was called: printed with the command's usage, exit code 2. */
export class UsageError extends Error {}

export function need(value: string | undefined, what = 'a VM id'): string {
  if (!value) throw new UsageError(`${what} is required`)
  return value
}
