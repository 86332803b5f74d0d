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
  labels: Record<string, string>
  /** When onExpire happens; null while no clock runs (no TTL, or paused). */
  expiresAt: string | null
  /** The TTL last given (create or extend): what a resume or start runs the clock for. */
  ttlSeconds: number | null
  onExpire: 'delete' | 'pause'
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
  /** Seconds the VM lives once running (the manager's DEFAULT_TTL_SECONDS when absent; null: none). */
  ttlSeconds?: number | null
  /** What happens then: delete (default) or pause. */
  onExpire?: 'delete' | 'pause'
  /** Up to 32 {key: value} labels; `Sandbox.list({ labels })` finds VMs by them. */
  labels?: Record<string, string>
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
  /** Output as it happens (the call streams; the result still holds all of it). */
  onStdout?: (text: string) => void
  onStderr?: (text: string) => void
}

/** One line of a streamed run or a process's output. */
export type OutputEvent =
  | { type: 'stdout' | 'stderr'; data?: string; dataBase64?: string; offset?: number; skipped?: number }
  | { type: 'exit'; exitCode: number; timedOut: boolean; durationMs: number; result?: unknown; error?: unknown; stdoutTruncated?: boolean; stderrTruncated?: boolean }
  | { type: 'error'; code: string; message: string }

export type ProcessSignal = 'SIGINT' | 'SIGTERM' | 'SIGKILL' | 'SIGHUP' | 'SIGQUIT' | 'SIGUSR1' | 'SIGUSR2' | 'SIGSTOP' | 'SIGCONT' | 'SIGWINCH'

/** A background process (its state as the API shows it). */
export interface ProcessInfo {
  pid: number
  tag?: string
  cmd: string
  args?: string[]
  state: 'running' | 'exited'
  exitCode?: number
  timedOut?: boolean
  startedAt: string
  endedAt?: string
  stdin: boolean
  pty?: { cols: number; rows: number }
  stdoutBytes: number
  stderrBytes: number
  readers: number
}

export interface ProcessStartOptions {
  /** A shell line (bash -c), or `args` for argv without a shell. */
  cmd?: string
  args?: string[]
  cwd?: string
  env?: Record<string, string>
  timeoutMs?: number
  /** Keep stdin open for `sendStdin`. */
  stdin?: boolean
  /** Run on a pseudo-terminal of this size. */
  pty?: { cols: number; rows: number }
  tag?: string
}

export interface PtyOptions {
  cols: number
  rows: number
  /** Default: a login bash. */
  cmd?: string
  args?: string[]
  cwd?: string
  env?: Record<string, string>
  tag?: string
  /** Kill the terminal's whole process tree after this long (no timeout unless given). */
  timeoutMs?: number
}

export interface RunOptions {
  args?: string[]
  env?: Record<string, string>
  timeoutMs?: number
  /** Extra runtime flags (denoFlags for run-ts, nodeFlags for run-js). */
  flags?: string[]
  /** false: a fresh runtime instead of the one the VM keeps warm (the cold path). */
  warm?: boolean
  signal?: AbortSignal
}

export interface SnapshotInfo {
  id: string
  kind: 'user_overlay' | 'image_seed' | 'template'
  createdAt: string
  cpu: number
  memMb: number
  imageId: string
  sourceVmId: string | null
  containsSecrets: boolean
  pauseMs: number
  createdBy: string | null
}

/** One entry of a listing, stat or glob (a symlink is described as the link). */
export interface FileEntry {
  name: string
  /** Absolute, under /workspace. */
  path: string
  type: 'file' | 'dir' | 'symlink'
  size: number
  /** Permission bits as octal text, e.g. "644". */
  mode: string
  mtime: string
}

/** A change seen by `files.watch`. */
export interface FileEvent {
  type: 'create' | 'write' | 'remove' | 'rename' | 'overflow'
  path?: string
  /** rename: the old path. */
  from?: string
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

/** GET /v1/vms/:id/ports/:port/url: a browser url for a port of the VM, proxied by the manager. */
export interface PreviewUrl {
  /** `http(s)://<port>-<vmId>.<PREVIEW_DOMAIN>[:port]/?rds_preview_token=…`; opening it sets a cookie for that host. */
  url: string
  /** When the token (and its cookie) stops opening the port. */
  expiresAt: string
  /** Served without a token (ports.setPublic). */
  public: boolean
}

/** POST /v1/vms/:id/ports/:port/public. */
export interface PortPublicState {
  port: number
  public: boolean
  /** The preview address without a token (opens only while the port is public). */
  url: string
}

/** A guest image (GET /v1/images). */
export interface ImageInfo {
  id: string
  name: string
  description: string
  createdAt: string
  kernelFilename: string | null
  initrdFilename: string | null
  rootfsFilename: string | null
  baseRootfsBytes: number | null
  kernelUploadedAt: string | null
  rootfsUploadedAt: string | null
  /** The template shape's seed snapshot; every seeded shape is in `seeds`. */
  seedSnapshotId: string | null
  seedStatus: 'pending' | 'ready' | 'failed' | null
  seedUpdatedAt: string | null
  seedError: string | null
  seeds: { cpu: number; memMb: number; status: 'pending' | 'ready' | 'failed'; snapshotId: string | null; error: string | null; updatedAt: string; lastUsedAt: string | null }[]
  isDefault: boolean
  hasKernel: boolean
  hasInitrd: boolean
  hasRootfs: boolean
  manifest: Record<string, unknown> | null
  createdBy: string | null
}

/** A template's definition (the body of PUT /v1/templates/{name}; POST adds the name). */
export interface TemplateDefinition {
  /** The image to build on; the default image (at build time) when absent. */
  imageId?: string
  cpu: number
  memMb: number
  /** Command lines run in order by bash in /workspace as uid 1000; the build stops at the first that fails. */
  setup: string[]
  /** Environment of the setup commands (stored in the clear: secrets go in spawn's secretEnv). */
  env?: Record<string, string>
  allowIps?: string[]
  allowDomains?: string[]
  outboundInternet?: boolean
  /** Timeout of each setup command (default MAX_EXEC_TIMEOUT_MS). */
  setupTimeoutMs?: number
}

/** One setup command of a build, with the end of its output. */
export interface SetupStep {
  cmd: string
  exitCode: number
  timedOut: boolean
  durationMs: number
  stdout: string
  stderr: string
}

/** A template as the API shows it (TemplatePublic). */
export interface TemplateInfo extends TemplateDefinition {
  name: string
  status: 'building' | 'ready' | 'failed'
  allowIps: string[]
  hasFiles: boolean
  /** The build VMs are spawned from; null until a build succeeded. */
  snapshotId: string | null
  builtImageId: string | null
  builtAt: string | null
  error: string | null
  setupOutput: SetupStep[]
  createdAt: string
  updatedAt: string
  createdBy: string | null
}

/** What a VM spawned from a template may choose for itself (the template fixes shape and image). */
export interface SpawnOptions {
  allowIps?: string[]
  allowDomains?: string[]
  outboundInternet?: boolean
  secretEnv?: Record<string, string>
  peerLinks?: PeerLink[]
  ttlSeconds?: number | null
  onExpire?: 'delete' | 'pause'
  labels?: Record<string, string>
}
