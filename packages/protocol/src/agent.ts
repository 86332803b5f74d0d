// The RPC between the manager (host) and the guest agent, spoken as HTTP/2 over the
// virtio-serial "control" port. Both ends import these schemas, and agent-routes.ts ties them to
// routes, so a change here is a protocol change: bump AGENT_PROTOCOL_VERSION when the shapes
// change incompatibly. The manager refuses a session whose agent states another version (its
// image was built for another manager), so an old image fails its boot with a sentence instead
// of misreading replies.
import { Type, type Static } from 'typebox'

/**
 * 2: init answers with the agent's identity, and error codes are a closed set.
 * 3: streamed output, background processes and file operations (routes added in one step).
 */
export const AGENT_PROTOCOL_VERSION = 3

/** Names of the virtio-serial ports (QEMU `virtserialport,name=`), found in the guest under /sys/class/virtio-ports. */
export const CONTROL_PORT_NAME = 'rds.control'
export const BRIDGE_PORT_NAME = 'rds.bridge'

export const AgentPaths = {
  health: '/health',
  init: '/init',
  exec: '/exec',
  run: '/run',
  /** The same requests as exec / run, answered as NDJSON OutputEvents while the command runs. */
  execStream: '/exec/stream',
  runStream: '/run/stream',
  upload: '/files/upload',
  download: '/files/download',
  shutdown: '/shutdown',
  /** Body: tar.gz of the generated peer tree; replaces /workspace/peers, root-owned and read-only. */
  peersInstall: '/peers/install',
  fileRead: '/files/read',
  fileWrite: '/files/write',
  fileStat: '/files/stat',
  fileList: '/files/list',
  fileGlob: '/files/glob',
  fileDelete: '/files/delete',
  fileMove: '/files/move',
  fileMkdir: '/files/mkdir',
  fileChmod: '/files/chmod',
  fileWatch: '/files/watch',
  processStart: '/processes/start',
  processList: '/processes/list',
  processGet: '/processes/get',
  processOutput: '/processes/output',
  processStdin: '/processes/stdin',
  processSignal: '/processes/signal',
  processResize: '/processes/resize',
  processKill: '/processes/kill',
} as const

/** Who answers: stated in the reply of init (the first request of every session) and of health. */
export const AgentIdentity = Type.Object({
  agentVersion: Type.String(),
  protocolVersion: Type.Integer(),
})
export type AgentIdentity = Static<typeof AgentIdentity>

export const Health = Type.Object({
  status: Type.Literal('ok'),
  ...AgentIdentity.properties,
  uptimeMs: Type.Number(),
})
export type Health = Static<typeof Health>

/**
 * The guest's network as the host assigned it. Applied at every (re)connect, so a clone restored
 * from a snapshot takes its own address. The guest's view is a convenience: the host enforces
 * policy on the TAP whatever the guest configures.
 */
export const GuestNetwork = Type.Object({
  mac: Type.String({ pattern: '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$' }),
  address: Type.String({ pattern: '^\\d{1,3}(\\.\\d{1,3}){3}$' }),
  prefixLength: Type.Integer({ minimum: 8, maximum: 30 }),
  gateway: Type.String({ pattern: '^\\d{1,3}(\\.\\d{1,3}){3}$' }),
  nameservers: Type.Array(Type.String({ pattern: '^\\d{1,3}(\\.\\d{1,3}){3}$' }), { maxItems: 3 }),
})
export type GuestNetwork = Static<typeof GuestNetwork>

/** Sent by the host after every (re)connect: the guest is told the time, given fresh entropy and its network. */
export const InitRequest = Type.Object({
  unixTimeMs: Type.Number(),
  /** base64 of host random bytes, mixed into the guest kernel RNG. */
  entropy: Type.String({ maxLength: 4096 }),
  network: Type.Optional(GuestNetwork),
  /**
   * false: start the user's processes without address-space randomisation, so that under
   * emulation QEMU reuses their translated code from one process to the next. Absent: on.
   */
  userAslr: Type.Optional(Type.Boolean()),
})
export type InitRequest = Static<typeof InitRequest>

export const InitReply = AgentIdentity
export type InitReply = Static<typeof InitReply>

export const ExecRequest = Type.Object({
  /** A shell command line (bash -c). Exactly one of cmd / args. */
  cmd: Type.Optional(Type.String()),
  /** argv mode: args[0] is looked up on the guest PATH and run without a shell. */
  args: Type.Optional(Type.Array(Type.String(), { minItems: 1 })),
  cwd: Type.Optional(Type.String()),
  env: Type.Optional(Type.Record(Type.String(), Type.String())),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 1 })),
  /** Per-stream cap; output beyond it is dropped and the matching *Truncated flag is set. */
  maxOutputBytes: Type.Optional(Type.Integer({ minimum: 1 })),
  /**
   * Run as guest root. Honoured only in a guest booted with the `rds.test_root=1` kernel
   * argument, which the manager sets only under RDS_TEST_GUEST_ROOT=true (test suites that must
   * show that guest root cannot pass the host's enforcement).
   */
  asRoot: Type.Optional(Type.Boolean()),
})
export type ExecRequest = Static<typeof ExecRequest>

export const ExecResult = Type.Object({
  exitCode: Type.Integer(),
  stdout: Type.String(),
  stderr: Type.String(),
  timedOut: Type.Boolean(),
  stdoutTruncated: Type.Boolean(),
  stderrTruncated: Type.Boolean(),
  durationMs: Type.Number(),
})
export type ExecResult = Static<typeof ExecResult>

export const RunRequest = Type.Object({
  runtime: Type.Union([Type.Literal('deno'), Type.Literal('node')]),
  code: Type.Optional(Type.String()),
  path: Type.Optional(Type.String()),
  args: Type.Optional(Type.Array(Type.String())),
  /** "KEY=value" entries; for Deno only these keys are readable (--allow-env=<keys>). */
  env: Type.Optional(Type.Array(Type.String())),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 1 })),
  /** Extra runtime flags (denoFlags / nodeFlags of the public API). */
  flags: Type.Optional(Type.Array(Type.String())),
  /** Deno only: grant --allow-net (the manager sets it from the VM's network policy). */
  allowNet: Type.Optional(Type.Boolean()),
  maxOutputBytes: Type.Optional(Type.Integer({ minimum: 1 })),
  /**
   * false: start a fresh runtime for this call and do not keep one warm for later calls (image
   * seeds, the cold baseline of bench/). Absent or true: a warm runtime serves the call when its
   * options match (see the agent's run/warm-runtimes.ts).
   */
  warm: Type.Optional(Type.Boolean()),
})
export type RunRequest = Static<typeof RunRequest>

export const RunResult = Type.Object({
  ...ExecResult.properties,
  /** Value given to result.set(v): any JSON value. Absent when never set. */
  result: Type.Optional(Type.Unknown()),
  /** Value given to result.error(e) or the uncaught error, serialized. */
  error: Type.Optional(Type.Unknown()),
})
export type RunResult = Static<typeof RunResult>

/** Query of POST /files/upload (body: plain tar from the manager; tar.gz is still accepted). */
export const UploadQuery = Type.Object({
  dest: Type.String(),
  maxEntries: Type.Optional(Type.Integer({ minimum: 1 })),
  maxBytes: Type.Optional(Type.Integer({ minimum: 1 })),
})
export type UploadQuery = Static<typeof UploadQuery>

/**
 * The most bytes a plain tar within the limits can take: its entries' contents plus, per entry,
 * a header block, padding and room for a long-name header, plus the end blocks. Both ends cap an
 * upload's plain stream with it (a gzip bomb stops there).
 */
export function plainTarMaxBytes(limits: { maxEntries: number; maxBytes: number }): number {
  return limits.maxBytes + limits.maxEntries * 2048 + 1024 * 1024
}

/** An archive's encoding: gzip-compressed (the default everywhere) or plain tar. */
export const ArchiveFormat = Type.Union([Type.Literal('tar.gz'), Type.Literal('tar')])
export type ArchiveFormat = Static<typeof ArchiveFormat>

/** Query of GET /files/download (response: a tar.gz stream, or plain tar with format=tar). */
export const DownloadQuery = Type.Object({ path: Type.String(), format: Type.Optional(ArchiveFormat) })
export type DownloadQuery = Static<typeof DownloadQuery>

export const AgentErrorCodes = [
  'invalid_request', // body/query does not match the schema
  'path_not_allowed', // outside /workspace and /tmp after resolving symlinks
  'path_not_found',
  'archive_invalid', // unreadable tar.gz, absolute/../link/device entries
  'archive_too_large', // entries or uncompressed bytes over the limit (-> 413)
  'not_a_directory', // a directory was needed (-> 409)
  'is_a_directory', // a file was needed (-> 409)
  'directory_not_empty', // delete without recursive (-> 409)
  'already_exists', // mkdir over a file (-> 409)
  'permission_denied', // uid 1000 may not do it (-> 403)
  'range_not_satisfiable', // no byte of the range exists (-> 416)
  'too_many_entries', // a listing or glob over MAX_LIST_ENTRIES (-> 400)
  'no_space', // the VM's disk is full (-> 507)
  'busy', // shutting down
  'network_failed', // the host-assigned network could not be applied
  'process_not_found', // no process with that pid (never started, or forgotten)
  'process_limit', // too many running processes (-> 429)
  'process_state', // the process cannot do that now: exited, no stdin pipe, not on a terminal (-> 409)
  'internal',
] as const
export type AgentErrorCode = (typeof AgentErrorCodes)[number]

/**
 * Every agent error body, whatever the route. `code` is one of AgentErrorCodes: the manager passes
 * some of them on to API clients, so an agent cannot make the API answer with a code of its choosing.
 */
export const AgentError = Type.Object({
  code: Type.Enum(AgentErrorCodes),
  message: Type.String(),
})
export type AgentError = Static<typeof AgentError>
