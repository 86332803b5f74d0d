// Which run calls a warm runtime may serve. A warm runtime was started with fixed flags,
// permissions, arguments and working directory, and receives only the program and the call's
// env; any call that needs something else at start-up takes the cold path.
import type { RunRequest } from '@rds/protocol'
import type { Runtime } from './wrappers.ts'

/** The start-up options a warm runtime is made with; calls match on `key`. */
export interface WarmShape {
  runtime: Runtime
  allowNet: boolean
  /** Deno's --allow-env keys (sorted; empty: bare --allow-env). Node has no permissions. */
  envKeys: string[]
  key: string
}

// Variables a runtime, its allocator, TLS stack or ICU reads once at start-up: set later, in the
// running process, they would not act as they do in a cold start. So are the variables the agent
// itself sets (the user's value replaces them in a cold run's execve).
const STARTUP_PREFIX = /^(NODE_|UV_|LD_|MALLOC_|GLIBC_|OPENSSL_|SSL_|DENO_|RUST_|NPM_CONFIG_|V8_|LC_|ICU_)/i
const STARTUP_NAMES = new Set(['LANG', 'LANGUAGE', 'TZ', 'TZDIR', 'HOME', 'TMPDIR', 'TMP', 'TEMP', 'NO_COLOR', 'FORCE_COLOR', 'TERM', 'COLORTERM', 'CI', 'PATH', 'USER', 'LOGNAME', 'SHELL'])
const PROXY = /_PROXY$/i

export function appliesAfterStart(name: string): boolean {
  return !STARTUP_PREFIX.test(name) && !STARTUP_NAMES.has(name.toUpperCase()) && !PROXY.test(name)
}

/**
 * The shape of warm runtime that can serve this call, or undefined when it must start cold.
 * `cwdIsWorkspace`: the call runs in the workspace root (code, or a path directly in it).
 */
export function warmShapeFor(req: RunRequest, userEnv: ReadonlyMap<string, string>, cwdIsWorkspace: boolean): WarmShape | undefined {
  if (req.warm === false || !cwdIsWorkspace) return undefined
  if (req.flags?.length || req.args?.length) return undefined
  for (const name of userEnv.keys()) if (!appliesAfterStart(name)) return undefined
  if (req.runtime === 'node') return { runtime: 'node', allowNet: false, envKeys: [], key: 'node' }
  const envKeys = [...userEnv.keys()].sort()
  const allowNet = req.allowNet === true
  return { runtime: 'deno', allowNet, envKeys, key: JSON.stringify(['deno', allowNet, envKeys]) }
}
