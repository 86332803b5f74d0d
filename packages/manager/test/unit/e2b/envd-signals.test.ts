// SendSignal: E2B's two named signals and, since proto3 enums are open, others by number.
import { describe, expect, it } from 'vitest'
import { fromJson } from '@bufbuild/protobuf'
import { signalOf } from '../../../src/api/e2b/envd-process.ts'
import { SendSignalRequestSchema } from '../../../src/api/e2b/gen/process_pb.js'

describe('envd signals', () => {
  it('maps signal numbers to the signals our process API sends, and no others', () => {
    expect(signalOf(15)).toBe('SIGTERM')
    expect(signalOf(2)).toBe('SIGINT')
    expect(signalOf(19)).toBe('SIGSTOP')
    expect(signalOf(9)).toBeUndefined() // a kill, handled before the map
    expect(signalOf(0)).toBeUndefined()
    expect(signalOf(31)).toBeUndefined()
  })

  it('a JSON client may send a number where the enum has no name', () => {
    expect(fromJson(SendSignalRequestSchema, { process: { pid: 7 }, signal: 2 }).signal).toBe(2)
    expect(fromJson(SendSignalRequestSchema, { process: { pid: 7 }, signal: 'SIGNAL_SIGTERM' }).signal).toBe(15)
  })
})
