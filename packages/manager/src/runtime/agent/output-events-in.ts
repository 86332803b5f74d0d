// A process's output as the agent streams it (NDJSON output events), read as the hostile bytes
// they are: each line is parsed and checked against the protocol's OutputEvent before it goes
// on, a line longer than MAX_LINE_BYTES or one that does not match ends the stream with an error
// event (never the guest's bytes), and the stream is read only as fast as the consumer pulls,
// so HTTP/2 flow control slows the agent (and the agent the process) instead of the manager buffering.
import type { Readable } from 'node:stream'
import { mismatch, OutputEvent, type ErrorEvent } from '@rds/protocol'

/** An event carries at most 64 KiB of output; as JSON text (escapes, base64) well under this. */
export const MAX_LINE_BYTES = 1024 * 1024
const NEWLINE = 0x0a

const broken = (message: string): ErrorEvent => ({ type: 'error', code: 'agent_reply_invalid', message })

/**
 * The checked events of `stream`, ending with the agent's exit event, or with an error event when
 * the agent broke the protocol or the stream ended early. Returning early (the consumer left)
 * destroys the stream, which cancels it on the agent.
 */
export async function* outputEventsOf(stream: Readable): AsyncGenerator<OutputEvent> {
  let partial: Buffer[] = []
  let partialBytes = 0
  let finished = false
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0
      let nl: number
      while ((nl = chunk.indexOf(NEWLINE, start)) >= 0) {
        if (partialBytes + nl - start > MAX_LINE_BYTES) return yield broken(`the agent sent an output line over ${MAX_LINE_BYTES} bytes`)
        const line = Buffer.concat([...partial, chunk.subarray(start, nl)])
        partial = []
        partialBytes = 0
        start = nl + 1
        let event: unknown
        try {
          event = JSON.parse(line.toString('utf8'))
        } catch {
          return yield broken('the agent sent an output line that is not JSON')
        }
        const problem = mismatch(OutputEvent, event)
        if (problem !== undefined) return yield broken(`the agent sent an output event that does not match the protocol (${problem})`)
        yield event as OutputEvent
        if ((event as OutputEvent).type !== 'stdout' && (event as OutputEvent).type !== 'stderr') {
          finished = true
          return
        }
      }
      if (start < chunk.length) {
        partialBytes += chunk.length - start
        if (partialBytes > MAX_LINE_BYTES) return yield broken(`the agent sent an output line over ${MAX_LINE_BYTES} bytes`)
        partial.push(Buffer.from(chunk.subarray(start)))
      }
    }
    if (partialBytes > 0) yield broken('the agent ended the output stream in the middle of a line')
  } catch (err) {
    if (!finished) yield { type: 'error', code: 'agent_unavailable', message: `the output stream from the agent broke: ${(err as Error).message}` }
  } finally {
    stream.destroy()
  }
}
