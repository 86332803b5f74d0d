import { MAX_TAG_LENGTH, OutputEvent, ProcessInfo, ProcessSignal, PtySize } from '@rds/protocol'
import { Type, type Static } from 'typebox'

export const ProcessParams = Type.Object({ id: Type.String({ maxLength: 128 }), pid: Type.Integer({ minimum: 1, maximum: 2 ** 22 }) })
export type ProcessParams = Static<typeof ProcessParams>

export const ProcessStartBody = Type.Object(
  {
    cmd: Type.Optional(Type.String({ minLength: 1, description: 'Run by bash -c as uid 1000. Exactly one of cmd and args.' })),
    args: Type.Optional(Type.Array(Type.String(), { minItems: 1, maxItems: 4096, description: 'argv without a shell: args[0] is the program (looked up in PATH).' })),
    cwd: Type.Optional(Type.String({ description: 'Under /workspace (default /workspace).' })),
    env: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String())),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, description: 'Kill the whole process tree after this long. No timeout unless given.' })),
    stdin: Type.Optional(Type.Boolean({ description: 'Give the process a stdin pipe (POST …/stdin, attach); otherwise it reads /dev/null.' })),
    pty: Type.Optional(Type.Object(PtySize.properties, { additionalProperties: false, description: 'Run on a pseudo-terminal of this size (TERM=xterm-256color; stderr goes to the terminal too).' })),
    tag: Type.Optional(Type.String({ maxLength: MAX_TAG_LENGTH, description: 'Any label of yours, listed with the process.' })),
  },
  { additionalProperties: false },
)
export type ProcessStartBody = Static<typeof ProcessStartBody>

export const ProcessResponse = Type.Object(ProcessInfo.properties)
export const ProcessListResponse = Type.Array(ProcessResponse)

export const OutputQuery = Type.Object({
  since: Type.Optional(Type.Integer({ minimum: 0, description: 'First byte wanted of stdout (and of stderr unless stderrSince is given); the offset of an event plus its byte length resumes after it.' })),
  stderrSince: Type.Optional(Type.Integer({ minimum: 0, description: 'First byte wanted of stderr.' })),
  follow: Type.Optional(Type.Boolean({ description: 'Stay open for new output until the process exits (then the exit event); false (default) returns what is kept and ends.' })),
})
export type OutputQuery = Static<typeof OutputQuery>

/** Documentation of one NDJSON line of the output route. */
export const OutputEventDoc = OutputEvent

export const StdinQuery = Type.Object({ eof: Type.Optional(Type.Boolean({ description: 'Close the process\'s stdin once the body is written.' })) })

export const SignalBody = Type.Object({ signal: ProcessSignal }, { additionalProperties: false })

export const AttachQuery = Type.Object({
  ticket: Type.Optional(Type.String({ maxLength: 128, description: 'From POST …/attach-ticket, instead of the X-API-Key header (browsers).' })),
  since: Type.Optional(Type.Integer({ minimum: 0, description: 'Replay output from this offset (default 0: everything still kept).' })),
})
export type AttachQuery = Static<typeof AttachQuery>

export const TicketResponse = Type.Object({ ticket: Type.String(), expiresAt: Type.String() })
