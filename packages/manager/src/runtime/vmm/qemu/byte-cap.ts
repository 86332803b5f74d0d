// A pass-through stream that fails once more than `maxBytes` went through it: a VMM's state
// stream is written to the host's disk and must not outgrow what a guest of its size can hold.
import { Transform } from 'node:stream'
import { VmmError } from '../vmm-error.ts'

export function byteCap(maxBytes: number): Transform {
  let seen = 0
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length
      if (seen > maxBytes) done(new VmmError('state_too_large', `the VM state stream passed its cap of ${maxBytes} bytes (guest RAM + device state); the snapshot was cancelled`, { maxBytes }))
      else done(null, chunk)
    },
  })
}
