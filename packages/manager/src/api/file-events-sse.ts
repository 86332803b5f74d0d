// Watch events from the agent (FileEvent lines) as Server-Sent Events: each event one `data:`
// line of JSON. The guest's lines are checked against the schema and bounded in length before
// anything goes out; a comment line every KEEPALIVE_MS keeps proxies from closing an idle watch
// and makes a departed client show up as a failed write.
import { Transform } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'
import { FILE_EVENT_MAX_BYTES, FileEvent, matches } from '@rds/protocol'

const KEEPALIVE_MS = 15_000

export function fileEventsToSse(): Transform {
  let partial = ''
  const text = new StringDecoder('utf8')
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      partial += text.write(chunk)
      const lines = partial.split('\n')
      partial = lines.pop()!
      if (partial.length > FILE_EVENT_MAX_BYTES) return cb(new Error('the guest sent an over-long watch event'))
      let out = ''
      for (const line of lines) {
        let ev: unknown
        try {
          ev = JSON.parse(line)
        } catch {
          continue
        }
        if (matches(FileEvent, ev)) out += `data: ${JSON.stringify(ev)}\n\n`
      }
      cb(null, out || undefined)
    },
  })
  const timer = setInterval(() => {
    if (!t.destroyed && !t.writableEnded) t.push(': keepalive\n\n')
  }, KEEPALIVE_MS)
  timer.unref()
  t.once('close', () => clearInterval(timer))
  return t
}
