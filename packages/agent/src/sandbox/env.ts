import { AgentFailure } from '../errors.ts'
import type { AgentConfig } from '../config.ts'

/** What a login shell of `user` would have; the agent's own environment is never inherited. */
export function baseEnv(config: AgentConfig): Record<string, string> {
  return {
    PATH: '/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin',
    HOME: config.home,
    USER: 'user',
    LOGNAME: 'user',
    SHELL: '/bin/bash',
    LANG: 'C.UTF-8',
    TMPDIR: config.tmp,
    TERM: 'dumb',
  }
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/** Parses the run API's `["KEY=value", ...]`; messages match the original agent's. */
export function parseEnvList(list: readonly string[] | undefined): Map<string, string> {
  const out = new Map<string, string>()
  for (const entry of list ?? []) {
    const eq = entry.indexOf('=')
    if (eq < 0) throw new AgentFailure('invalid_request', `Invalid env entry (expected KEY=value): ${entry}`)
    const key = entry.slice(0, eq)
    if (!ENV_NAME.test(key)) throw new AgentFailure('invalid_request', `Invalid env var name: ${key}`)
    if (entry.includes('\0')) throw new AgentFailure('invalid_request', `Invalid env value for ${key}: contains NUL`)
    out.set(key, entry.slice(eq + 1))
  }
  return out
}

/** Caller-supplied map for exec; same name rule, and no NUL bytes (execve would reject them). */
export function checkEnvRecord(env: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env ?? {})) {
    if (!ENV_NAME.test(k)) throw new AgentFailure('invalid_request', `Invalid env var name: ${k}`)
    if (v.includes('\0')) throw new AgentFailure('invalid_request', `Invalid env value for ${k}: contains NUL`)
    out[k] = v
  }
  return out
}
