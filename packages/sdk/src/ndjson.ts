// Reads a stream of NDJSON output events (streamed exec, a process's output).
import type { OutputEvent } from './types.ts'

export async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<OutputEvent> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let buf = ''
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      buf += decoder.decode(value, { stream: true })
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        if (line.trim()) yield JSON.parse(line) as OutputEvent
      }
    }
    if (buf.trim()) yield JSON.parse(buf) as OutputEvent
  } finally {
    // Leaving early (break, an error) cancels the stream: the manager stops reading for us.
    await reader.cancel().catch(() => {})
  }
}
