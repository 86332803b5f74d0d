// The command line and environment a run's runtime starts with. Cold runs and warm runtimes
// (warm-runtimes.ts) both start here, so a warm runtime gets exactly the flags, permissions and
// environment a cold call with the same options gets.
import path from 'node:path'
import type { AgentConfig } from '../config.ts'
import { baseEnv } from '../sandbox/env.ts'
import type { Runtime } from './wrappers.ts'

export interface LaunchOptions {
  runtime: Runtime
  /** Deno only: --allow-net instead of the peer bridge socket alone. */
  allowNet: boolean
  /** Deno only: the env keys the code may read (--allow-env=<keys>); empty: bare --allow-env. */
  envKeys: readonly string[]
  flags: readonly string[]
  args: readonly string[]
}

/** Files outside the writable dirs that network code needs (name resolution, TLS roots). */
const DENO_READ_FILES = ['/etc/resolv.conf', '/etc/hosts', '/etc/nsswitch.conf', '/etc/ssl/certs/ca-certificates.crt']

export function runtimeArgv(config: AgentConfig, o: LaunchOptions, runDir: string, wrapper: string): string[] {
  if (o.runtime === 'node') return [config.node, ...o.flags, wrapper, ...o.args]
  return [...denoPermissionArgv(config, o, runDir), ...o.flags, wrapper, ...o.args]
}

/** Before the user's variables: what every run of `runtime` gets. */
export function runtimeEnv(config: AgentConfig, runtime: Runtime): Record<string, string> {
  const env: Record<string, string> = { ...baseEnv(config) }
  if (runtime === 'deno') Object.assign(env, { DENO_DIR: path.join(config.workspace, '.deno'), NO_COLOR: '1' })
  return env
}

// The original's permission set: /workspace, /tmp and /var/tmp readable and writable (never the
// workspace's other name, /home/user), bare --allow-env unless an env list names the keys, and
// the network whenever the VM has any egress. Beyond it: the run dir holding the wrapper, the
// result pipe on fd 3 and the peer bridge socket.
function denoPermissionArgv(config: AgentConfig, o: LaunchOptions, runDir: string): string[] {
  const { workspace, tmp, varTmp, peerBridgeSocket } = config
  const dirs = [workspace, tmp, varTmp]
  return [
    config.deno,
    'run',
    '--quiet',
    '--no-prompt',
    // Deno asks for read+write to connect to a Unix socket (peer proxies).
    `--allow-read=${[...dirs, ...DENO_READ_FILES, runDir, peerBridgeSocket].join(',')}`,
    `--allow-write=${[...dirs, '/proc/self/fd/3', peerBridgeSocket].join(',')}`,
    o.envKeys.length ? `--allow-env=${o.envKeys.join(',')}` : '--allow-env',
    // Without general network access the peer bridge socket stays reachable (Deno checks net,
    // read and write permissions for a Unix socket connect).
    o.allowNet ? '--allow-net' : `--allow-net=unix:${peerBridgeSocket}`,
  ]
}
