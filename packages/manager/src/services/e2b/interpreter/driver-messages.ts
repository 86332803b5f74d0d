// What the code interpreter's driver (driver.py) writes, one JSON document a line. The driver
// runs as the sandbox user next to the user's code, which can write to its descriptors too: every
// line is hostile input, checked against these schemas and bounded in length, and only the fields
// named here go on to the client (as E2B's /execute NDJSON, which uses the same field names).
import { Type, type Static } from 'typebox'
import { chunkBytes, matches, type OutputEvent } from '@rds/protocol'

/** A result with an image can be large; a longer line is dropped, not buffered. */
export const MAX_DRIVER_LINE_BYTES = 16 * 1024 * 1024

const Id = Type.String({ maxLength: 64 })
const Text = Type.String()

export const DriverReady = Type.Object({ type: Type.Literal('ready') })
export const DriverFatal = Type.Object({ type: Type.Literal('fatal'), message: Text })
export const DriverOutput = Type.Object({ id: Type.Union([Id, Type.Null()]), type: Type.Union([Type.Literal('stdout'), Type.Literal('stderr')]), text: Text })
export const DriverResult = Type.Object({
  id: Id,
  type: Type.Literal('result'),
  is_main_result: Type.Boolean(),
  text: Type.Optional(Text),
  html: Type.Optional(Text),
  markdown: Type.Optional(Text),
  svg: Type.Optional(Text),
  png: Type.Optional(Text),
  jpeg: Type.Optional(Text),
  pdf: Type.Optional(Text),
  latex: Type.Optional(Text),
  json: Type.Optional(Type.Unknown()),
  javascript: Type.Optional(Text),
})
export const DriverError = Type.Object({ id: Id, type: Type.Literal('error'), name: Text, value: Text, traceback: Text })
export const DriverCount = Type.Object({ id: Id, type: Type.Literal('number_of_executions'), execution_count: Type.Integer({ minimum: 0 }) })
export const DriverEnd = Type.Object({ id: Id, type: Type.Literal('end_of_execution') })

export const DriverMessage = Type.Union([DriverReady, DriverFatal, DriverOutput, DriverResult, DriverError, DriverCount, DriverEnd])
export type DriverMessage = Static<typeof DriverMessage>
export type ExecutionMessage = Exclude<DriverMessage, { type: 'ready' } | { type: 'fatal' }>

/** The process ended (or its output stream broke) while we were reading. */
export interface DriverGone {
  type: 'gone'
  exitCode?: number
}

const RESULT_FIELDS = ['text', 'html', 'markdown', 'svg', 'png', 'jpeg', 'pdf', 'latex', 'json', 'javascript'] as const

/** A checked message as E2B's /execute line: only known fields, the execution id left out. */
export function e2bLineOf(m: ExecutionMessage): Record<string, unknown> {
  switch (m.type) {
    case 'stdout':
    case 'stderr':
      return { type: m.type, text: m.text, timestamp: new Date().toISOString() }
    case 'result': {
      const out: Record<string, unknown> = { type: 'result', is_main_result: m.is_main_result }
      for (const k of RESULT_FIELDS) if (m[k] !== undefined) out[k] = m[k]
      return out
    }
    case 'error':
      return { type: 'error', name: m.name, value: m.value, traceback: m.traceback }
    case 'number_of_executions':
      return { type: 'number_of_executions', execution_count: m.execution_count }
    case 'end_of_execution':
      return { type: 'end_of_execution' }
  }
}

/**
 * The driver's messages from the process's output events: stdout split into lines (a line over
 * the bound, or cut by bytes the replay buffer lost, is dropped), each checked. Ends with `gone`
 * when the process exits or the stream breaks.
 */
export async function* driverMessagesOf(events: AsyncIterable<OutputEvent>): AsyncGenerator<DriverMessage | DriverGone> {
  // The unfinished line in pieces: only new text is searched for a newline, so a long line costs
  // its length once, not once per chunk.
  let parts: string[] = []
  let partLength = 0
  let overlong = false
  for await (const e of events) {
    if (e.type === 'exit') return yield { type: 'gone', exitCode: e.exitCode }
    if (e.type === 'error') return yield { type: 'gone' }
    if (e.type !== 'stdout') continue
    if (e.skipped) {
      parts = []
      partLength = 0
      overlong = true
    }
    const text = chunkBytes(e).toString('utf8')
    let start = 0
    let nl: number
    while ((nl = text.indexOf('\n', start)) >= 0) {
      const line = parts.join('') + text.slice(start, nl)
      parts = []
      partLength = 0
      start = nl + 1
      if (overlong) {
        overlong = false
        continue
      }
      const m = parsed(line)
      if (m) yield m
    }
    if (overlong) continue
    const rest = text.slice(start)
    parts.push(rest)
    partLength += rest.length
    if (partLength > MAX_DRIVER_LINE_BYTES) {
      parts = []
      partLength = 0
      overlong = true
    }
  }
  yield { type: 'gone' }
}

function parsed(line: string): DriverMessage | undefined {
  let v: unknown
  try {
    v = JSON.parse(line)
  } catch {
    return undefined
  }
  return matches(DriverMessage, v) ? v : undefined
}
