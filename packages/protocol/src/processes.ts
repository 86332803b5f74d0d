// Background processes on the agent channel: the agent owns them (they outlive a manager restart
// and end with the VM), keeps a bounded replay buffer of each output stream, and answers the
// manager's start, list, get, output, stdin, signal, resize and kill. Output travels as the
// events of output-events.ts (NDJSON), each chunk with its byte offset in its stream.
import { Type, type Static } from 'typebox'

/** Running processes per VM; a start beyond it is refused (`process_limit`). */
export const MAX_RUNNING_PROCESSES = 32
/** Exited processes kept for their output and exit status; the oldest is forgotten first. */
export const MAX_EXITED_PROCESSES = 16
/** Replay buffer of each output stream of a process (the issue asks for at least 1 MiB). */
export const PROCESS_RING_BYTES = 1024 * 1024
export const MAX_TAG_LENGTH = 256

/** Signals a caller may send; anything else is refused by name before it reaches a process. */
export const PROCESS_SIGNALS = ['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGKILL', 'SIGUSR1', 'SIGUSR2', 'SIGALRM', 'SIGTERM', 'SIGCONT', 'SIGSTOP', 'SIGTSTP', 'SIGWINCH'] as const
export const ProcessSignal = Type.Enum(PROCESS_SIGNALS)
export type ProcessSignal = Static<typeof ProcessSignal>

export const PtySize = Type.Object(
  {
    cols: Type.Integer({ minimum: 1, maximum: 1000 }),
    rows: Type.Integer({ minimum: 1, maximum: 1000 }),
  },
  { additionalProperties: false },
)
export type PtySize = Static<typeof PtySize>

export const ProcessStartRequest = Type.Object(
  {
    /** Run by bash -c; exactly one of cmd / args. */
    cmd: Type.Optional(Type.String({ minLength: 1 })),
    /** argv without a shell: args[0] is the program (looked up in PATH). */
    args: Type.Optional(Type.Array(Type.String(), { minItems: 1, maxItems: 4096 })),
    cwd: Type.Optional(Type.String()),
    env: Type.Optional(Type.Record(Type.String(), Type.String())),
    /** Kill the process's whole tree after this long; no timeout when absent. */
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Give the process a stdin pipe (POST /processes/stdin); otherwise it reads /dev/null. */
    stdin: Type.Optional(Type.Boolean()),
    /** Run on a pseudo-terminal of this size (stdin, stdout and stderr are the terminal). */
    pty: Type.Optional(PtySize),
    tag: Type.Optional(Type.String({ maxLength: MAX_TAG_LENGTH })),
  },
  { additionalProperties: false },
)
export type ProcessStartRequest = Static<typeof ProcessStartRequest>

export const ProcessState = Type.Union([Type.Literal('running'), Type.Literal('exited')])

export const ProcessInfo = Type.Object({
  pid: Type.Integer({ minimum: 1 }),
  tag: Type.Optional(Type.String()),
  /** The command as given: cmd, or args joined by spaces (for display only). */
  cmd: Type.String(),
  args: Type.Optional(Type.Array(Type.String())),
  state: ProcessState,
  /** Set once exited: -1 on timeout, 128+n when killed by signal n. */
  exitCode: Type.Optional(Type.Integer()),
  timedOut: Type.Optional(Type.Boolean()),
  startedAt: Type.String(),
  endedAt: Type.Optional(Type.String()),
  stdin: Type.Boolean(),
  pty: Type.Optional(PtySize),
  /** Bytes written so far on each stream (the offset a follower reaches at the end). */
  stdoutBytes: Type.Integer({ minimum: 0 }),
  stderrBytes: Type.Integer({ minimum: 0 }),
  /** Output streams open on it now (followers and replays, WebSocket attaches included). */
  readers: Type.Integer({ minimum: 0 }),
})
export type ProcessInfo = Static<typeof ProcessInfo>

export const ProcessList = Type.Object({ processes: Type.Array(ProcessInfo, { maxItems: MAX_RUNNING_PROCESSES + MAX_EXITED_PROCESSES }) })
export type ProcessList = Static<typeof ProcessList>

export const ProcessRef = Type.Object({ pid: Type.Integer({ minimum: 1 }) }, { additionalProperties: false })
export type ProcessRef = Static<typeof ProcessRef>

export const ProcessSignalRequest = Type.Object({ pid: Type.Integer({ minimum: 1 }), signal: ProcessSignal }, { additionalProperties: false })
export type ProcessSignalRequest = Static<typeof ProcessSignalRequest>

export const ProcessResizeRequest = Type.Object({ pid: Type.Integer({ minimum: 1 }), ...PtySize.properties }, { additionalProperties: false })
export type ProcessResizeRequest = Static<typeof ProcessResizeRequest>

/**
 * Query of GET /processes/output (reply: NDJSON output events). `since` is the first byte wanted of
 * stdout and, unless `stderrSince` says otherwise, of stderr. `follow` keeps the stream open for
 * new output until the process exits (then the exit event).
 */
export const ProcessOutputQuery = Type.Object({
  pid: Type.Integer({ minimum: 1 }),
  since: Type.Optional(Type.Integer({ minimum: 0 })),
  stderrSince: Type.Optional(Type.Integer({ minimum: 0 })),
  follow: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
})
export type ProcessOutputQuery = Static<typeof ProcessOutputQuery>

/** Query of POST /processes/stdin (body: raw bytes, written as they come). */
export const ProcessStdinQuery = Type.Object({
  pid: Type.Integer({ minimum: 1 }),
  /** Close the process's stdin once the body is written. */
  eof: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
})
export type ProcessStdinQuery = Static<typeof ProcessStdinQuery>
