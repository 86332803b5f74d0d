// Every filesystem location and identity the agent touches, in one place, so host-side tests can
// point the agent at temp dirs and a host build of rds-exec. Production uses the defaults; the
// RDS_AGENT_* overrides are read only from the agent's own environment, which PID 1 controls.

import { PEER_BRIDGE_SOCKET } from '@rds/protocol'

export const AGENT_VERSION = '0.1.0'

export interface AgentConfig {
  /** The user's root as seen by user code. */
  workspace: string
  /** Same directory as `workspace` (bind mount), reachable under this second name. */
  home: string
  tmp: string
  /** Writable for user code like /tmp (run-ts may use it, as in the original). */
  varTmp: string
  /** Root-only runtime state (tmpfs): per-run wrapper dirs. */
  stateDir: string
  /** Root-only upload spool, on the VM's disk: an upload may be larger than guest memory. */
  spoolDir: string
  /** setuid/cgroup/setsid helper, see guest/init/rds-exec.c. */
  execHelper: string
  /** cgroup2 mount; per-exec groups go in `<cgroupRoot>/rds`. Empty disables cgroups. */
  cgroupRoot: string
  uid: number
  gid: number
  bash: string
  sh: string
  deno: string
  node: string
  tar: string
  mkfifo: string
  /** The file worker's bundle (worker/file-worker.ts), readable by the user who runs it. */
  fileWorker: string
  dd: string
  /** Set the guest clock from the host's init (off only when the agent runs on a real host, in tests). */
  setClock: boolean
  ip: string
  /** Written with the host-assigned nameservers. */
  resolvConf: string
  /** Consumer code reaches the peer bridge here (see peers/bridge-relay.ts). */
  peerBridgeSocket: string
  /** The generated peer files (/workspace/peers as seen through the home directory). */
  peersDir: string
  /** Set only by host tests: listen on this Unix socket instead of the virtio port. */
  listenUnix: string | undefined
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const str = (k: string, d: string): string => env[k] ?? d
  const int = (k: string, d: number): number => {
    const v = env[k]
    if (v === undefined) return d
    if (!/^\d+$/.test(v)) throw new Error(`${k} must be a non-negative integer`)
    return Number(v)
  }
  return {
    workspace: str('RDS_AGENT_WORKSPACE', '/workspace'),
    home: str('RDS_AGENT_HOME', '/home/user'),
    tmp: str('RDS_AGENT_TMP', '/tmp'),
    varTmp: str('RDS_AGENT_VAR_TMP', '/var/tmp'),
    stateDir: str('RDS_AGENT_STATE_DIR', '/run/rds'),
    spoolDir: str('RDS_AGENT_SPOOL_DIR', '/var/lib/rds/spool'),
    execHelper: str('RDS_AGENT_EXEC_HELPER', '/usr/lib/rds/rds-exec'),
    cgroupRoot: str('RDS_AGENT_CGROUP_ROOT', '/sys/fs/cgroup'),
    uid: int('RDS_AGENT_UID', 1000),
    gid: int('RDS_AGENT_GID', 1000),
    bash: str('RDS_AGENT_BASH', '/bin/bash'),
    sh: str('RDS_AGENT_SH', '/bin/sh'),
    deno: str('RDS_AGENT_DENO', '/usr/local/bin/deno'),
    node: str('RDS_AGENT_NODE', '/usr/local/bin/node'),
    tar: str('RDS_AGENT_TAR', 'tar'),
    mkfifo: str('RDS_AGENT_MKFIFO', 'mkfifo'),
    fileWorker: str('RDS_AGENT_FILE_WORKER', '/usr/lib/rds/file-worker.mjs'),
    dd: str('RDS_AGENT_DD', 'dd'),
    setClock: env.RDS_AGENT_SET_CLOCK !== 'false',
    ip: str('RDS_AGENT_IP', '/usr/sbin/ip'),
    resolvConf: str('RDS_AGENT_RESOLV_CONF', '/etc/resolv.conf'),
    peerBridgeSocket: str('RDS_AGENT_PEER_BRIDGE_SOCKET', PEER_BRIDGE_SOCKET),
    peersDir: str('RDS_AGENT_PEERS_DIR', `${str('RDS_AGENT_HOME', '/home/user')}/peers`),
    listenUnix: env.RDS_AGENT_LISTEN_UNIX || undefined,
  }
}

export const DEFAULT_EXEC_TIMEOUT_MS = 30_000
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
/** How long to wait for stdout/stderr EOF after the main process exited (background children may hold them). */
export const PIPE_DRAIN_GRACE_MS = 100
/** Background children that keep writing to the inherited pipes do not hold the answer longer than this after the exit. */
export const PIPE_DRAIN_MAX_MS = 2000
export const DEFAULT_UPLOAD_MAX_ENTRIES = 10_000
export const DEFAULT_UPLOAD_MAX_BYTES = 1024 * 1024 * 1024
/** JSON request bodies (exec/run carry code inline). */
export const MAX_JSON_BODY_BYTES = 8 * 1024 * 1024
/** The run result travels over a pipe; anything larger is refused rather than buffered. */
export const MAX_RUN_RESULT_BYTES = 16 * 1024 * 1024
export const HTTP2_WINDOW_BYTES = 4 * 1024 * 1024
