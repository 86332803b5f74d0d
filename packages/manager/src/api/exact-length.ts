// A streamed reply whose length was announced (Content-Length) by a guest: exactly that many bytes
// go out. More is cut off with an error, fewer ends in an error, so a client never takes a
// truncated or padded body for the file.
import { Transform } from 'node:stream'

export function exactLength(length: number): Transform {
  let seen = 0
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length
      if (seen > length) cb(new Error(`the guest sent more than the ${length} bytes it announced`))
      else cb(null, chunk)
    },
    flush(cb) {
      cb(seen === length ? null : new Error(`the guest sent ${seen} of the ${length} bytes it announced`))
    },
  })
}
