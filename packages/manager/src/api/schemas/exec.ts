import type { Readable } from 'node:stream'
import { OutputEvent } from '@rds/protocol'
import { Type, type Static } from 'typebox'

const Timeout = Type.Integer({ minimum: 1, description: 'Kill the whole process tree after this long (default 30000).' })
const Output = {
  exitCode: Type.Integer({ description: '-1 on timeout, 128+n when killed by signal n.' }),
  stdout: Type.String(),
  stderr: Type.String(),
  timedOut: Type.Boolean(),
  stdoutTruncated: Type.Boolean({ description: 'Output beyond EXEC_OUTPUT_MAX_BYTES was dropped.' }),
  stderrTruncated: Type.Boolean(),
  durationMs: Type.Number(),
}

const Stream = Type.Boolean({ description: 'Answer 200 application/x-ndjson: one OutputEvent per line as output happens, ending with one exit or error event. A client that disconnects kills the command.' })

export const ExecBody = Type.Object(
  {
    cmd: Type.Optional(Type.String({ minLength: 1, description: 'Run by bash as uid 1000 in /workspace. Exactly one of cmd and args.' })),
    args: Type.Optional(Type.Array(Type.String(), { minItems: 1, description: 'argv mode: run without a shell, args[0] looked up on the guest PATH; every argument arrives unchanged. Exactly one of cmd and args.' })),
    cwd: Type.Optional(Type.String()),
    env: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String())),
    timeoutMs: Type.Optional(Timeout),
    stream: Type.Optional(Stream),
  },
  { additionalProperties: false },
)
export type ExecBody = Static<typeof ExecBody>

export const ExecResponse = Type.Object(Output)

const runFields = {
  code: Type.Optional(Type.String({ description: 'Module source; `result.set(v)` / `result.error(e)` are global.' })),
  path: Type.Optional(Type.String({ description: 'A module under /workspace instead of `code`.' })),
  args: Type.Optional(Type.Array(Type.String())),
  env: Type.Optional(Type.Array(Type.String(), { description: '"KEY=value" entries.' })),
  timeoutMs: Type.Optional(Timeout),
  stream: Type.Optional(Stream),
  warm: Type.Optional(
    Type.Boolean({
      default: true,
      description:
        'false: start a fresh runtime for this call (the cold path). By default a runtime the VM started ahead (after its first call of this runtime) serves the call when the call needs no flags, args, start-up env variables or other Deno permissions; it is used once and never carries anything into another call.',
    }),
  ),
}

export const RunTsBody = Type.Object({ ...runFields, denoFlags: Type.Optional(Type.Array(Type.String())) }, { additionalProperties: false })
export type RunTsBody = Static<typeof RunTsBody>
export const RunJsBody = Type.Object({ ...runFields, nodeFlags: Type.Optional(Type.Array(Type.String())) }, { additionalProperties: false })
export type RunJsBody = Static<typeof RunJsBody>

export const RunResponse = Type.Object(
  {
    ...Output,
    result: Type.Optional(Type.Unknown({ description: 'Any JSON value passed to result.set().' })),
    error: Type.Optional(Type.Unknown({ description: 'The value passed to result.error(), or the uncaught error.' })),
  },
  {},
)

/** The 200 of exec / run-ts / run-js: JSON, or with `"stream": true` NDJSON of OutputEvent. */
export const streamable = (json: typeof ExecResponse | typeof RunResponse) => ({
  description: 'The result as JSON; with `"stream": true`, NDJSON: one OutputEvent per line (stdout/stderr chunks as they happen, then exactly one exit or error event).',
  // Typed as the stream the route sends; documented as the events it carries.
  content: { 'application/json': { schema: json }, 'application/x-ndjson': { schema: Type.Unsafe<Readable>(OutputEvent) } },
})

export const ExecLogsQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ default: 50 })),
  type: Type.Optional(Type.Union([Type.Literal('all'), Type.Literal('exec'), Type.Literal('run-ts'), Type.Literal('run-js')], { default: 'all' })),
})
export type ExecLogsQuery = Static<typeof ExecLogsQuery>

export const LogsQuery = Type.Object({
  type: Type.Optional(Type.String({ description: 'console.log (default, guest console) or vmm.log; the original names firecracker*.log are accepted.' })),
  tail: Type.Optional(Type.Integer({ default: 200 })),
})
export type LogsQuery = Static<typeof LogsQuery>

export const ExecLogsResponse = Type.Object({
  entries: Type.Array(
    Type.Object({
      id: Type.String(),
      timestamp: Type.String(),
      type: Type.Union([Type.Literal('exec'), Type.Literal('run-ts'), Type.Literal('run-js')]),
      input: Type.Record(Type.String(), Type.Unknown(), { description: 'The request, with env values removed (names only).' }),
      result: Type.Record(Type.String(), Type.Unknown(), { description: 'exitCode, stdout/stderr (capped at 16 KiB), result, error.' }),
      durationMs: Type.Number(),
    }),
  ),
  hasMore: Type.Boolean(),
})
