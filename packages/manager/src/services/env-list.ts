// "KEY=value" lists (run-ts/run-js `env`, and later `secretEnv`), with the original's messages.
import { Errors } from '../errors.ts'

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

export function parseEnvList(list: unknown): Record<string, string> {
  if (!Array.isArray(list)) throw Errors.invalidEnv('env must be an array of strings in the format KEY=value')
  const out: Record<string, string> = {}
  for (const entry of list) {
    if (typeof entry !== 'string') throw Errors.invalidEnv('env entries must be strings in the format KEY=value')
    const eq = entry.indexOf('=')
    if (eq <= 0) throw Errors.invalidEnv(`Invalid env entry (expected KEY=value): ${entry}`)
    const key = entry.slice(0, eq)
    if (!NAME.test(key)) throw Errors.invalidEnv(`Invalid env var name: ${key}`)
    out[key] = entry.slice(eq + 1)
  }
  return out
}

export const toEnvList = (env: Record<string, string>): string[] => Object.entries(env).map(([k, v]) => `${k}=${v}`)
