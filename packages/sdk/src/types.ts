// The API's shapes as the SDK uses them. Written by hand for readable names and docs, and
// checked against docs/openapi.json by packages/sdk/test/types.test.ts, so they cannot drift.

export type VmState = 'CREATED' | 'STARTING' | 'RUNNING' | 'PAUSED' | 'STOPPING' | 'STOPPED' | 'ERROR'

export interface PeerLink {
  alias: string
  vmId: string
  sourceMode?: 'hidden' | 'mounted'
}

/** A VM as the API shows it (VmPublic). */
export interface VmInfo {
  id: string
  state: VmState
  cpu: number
  memMb: number
  imageId: string
  guestIp: string | null
  allowIps: string[]
  allowDomains: string[]
  outboundInternet: boolean
  provisionMode: 'boot' | 'snapshot' | 'pool' | null
  sourceSnapshotId: string | null
  createdAt: string
  startedAt: string | null
  bootMs: number | null
  lastError: string | null
  createdBy: string | null
  peerLinks: PeerLink[]
}

/** What a create may say (POST /v1/vms); every field has a default here. */
export interface CreateOptions {
  /** vCPUs (default 1). */
  cpu?: number
  /** Guest memory in MiB (default 256). */
  memMb?: number
  /** IPv4 addresses / CIDRs the VM may reach (default none). */
  allowIps?: string[]
  /** Host names (and `*.example.com`) the VM may resolve and reach. */
  allowDomains?: string[]
  outboundInternet?: boolean
  imageId?: string
  /** Create from this snapshot (resumes its processes when cpu/memMb match). */
  snapshotId?: string
  /** Accept that the snapshot's memory holds secretEnv values of the VM it was taken of. */
  acceptSnapshotSecrets?: boolean
  /** Secrets every run in the VM gets as environment variables; never shown again. */
  secretEnv?: Record<string, string>
  peerLinks?: PeerLink[]
}

export interface ExecResult {
  exitCode: number
  stdout: string
  stderr: string
  timedOut: boolean
  stdoutTruncated: boolean
  stderrTruncated: boolean
  durationMs: number
}

export interface RunResult extends ExecResult {
  /** The value given to result.set(v). */
  result?: unknown
  /** The value given to result.error(e), or the uncaught error. */
  error?: unknown
}

export interface ExecOptions {
  cwd?: string
  env?: Record<string, string>
  timeoutMs?: number
  signal?: AbortSignal
}

export interface RunOptions {
  args?: string[]
  env?: Record<string, string>
  timeoutMs?: number
  /** Extra runtime flags (denoFlags for run-ts, nodeFlags for run-js). */
  flags?: string[]
  signal?: AbortSignal
}

export interface SnapshotInfo {
  id: string
  kind: 'user_overlay' | 'image_seed'
  createdAt: string
  cpu: number
  memMb: number
  imageId: string
  sourceVmId: string | null
  containsSecrets: boolean
  pauseMs: number
  createdBy: string | null
}

export interface NetworkPolicy {
  allowIps?: string[]
  allowDomains?: string[]
  outboundInternet?: boolean
}

export interface NetworkInfo {
  guestIp: string | null
  gateway: string
  mac: string | null
  allowIps: string[]
  allowDomains: string[]
  outboundInternet: boolean
  effective: { egress: 'none' | 'list' | 'all'; dns: 'none' | 'all' | 'listed'; gatewayServices: boolean }
}
