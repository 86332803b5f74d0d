import { ENV_NAME, EnvListError, parseEnvList as readEnvList } from '@rds/protocol'
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

/**
 * The run API's `["KEY=value", ...]`, read as the manager reads it (protocol env-list.ts), plus
 * what only the guest cares about: no NUL bytes, which execve would refuse.
 */
export function parseEnvList(list: readonly string[] | undefined): Map<string, string> {
  let env: Map<string, string>
  try {
    env = readEnvList(list ?? [])
  } catch (e) {
    if (e instanceof EnvListError) throw new AgentFailure('invalid_request', e.message)
    throw e
  }
  for (const [name, value] of env) refuseNul(name, value)
  return env
}

/** Caller-supplied map for exec; same name rule, and no NUL bytes. */
export function checkEnvRecord(env: Record<string, string> | undefined): Record<string, string> {
  const entries = Object.entries(env ?? {})
  for (const [name, value] of entries) {
    if (!ENV_NAME.test(name)) throw new AgentFailure('invalid_request', `Invalid env var name: ${name}`)
    refuseNul(name, value)
  }
  // fromEntries defines own properties: `__proto__` stays a variable, never a prototype.
  return Object.fromEntries(entries)
}

function refuseNul(name: string, value: string): void {
  if (value.includes('\0')) throw new AgentFailure('invalid_request', `Invalid env value for ${name}: contains NUL`)
}
