// The manager's reading of a streamed agent reply (NDJSON OutputEvents): bytes from a hostile
// guest become lines, each line one event checked against the protocol's OutputEvent schema and
// written on re-serialized, never passed through as raw bytes. It is a Readable pulled by its
// consumer (the API client's response): when the consumer stops, the agent stream is paused, so
// HTTP/2 flow control stops the guest, which stops reading its child's pipes and the child
// blocks. What the relay holds is bounded: the consumer's high-water mark, one chunk of the
// agent and one unfinished line. The stream always ends with exactly one exit or error event;
// anything the agent sends after its last event is ignored.
import { Readable } from 'node:stream'
import { AgentErrorCodes, jsonLine, mismatch, OutputEvent, type AgentEventStreamName, type ErrorEvent } from '@rds/protocol'
import { AgentRefusedError, AgentReplyInvalidError, AgentReplyTooLargeError, AgentUnavailableError } from './faults.ts'

const NEWLINE = 0x0a
/**
 * Longest line of a chunk event. The agent writes one event per pipe read (at most 64 KiB, at
 * most 6 bytes of JSON per byte when every byte is a control character): a line over this is not
 * the agent's.
 */
export const MAX_EVENT_LINE_BYTES = 1024 * 1024
/** The exit event of a run carries its result (up to 16 MiB of JSON): it alone may be longer. */
const EXIT_PREFIX = Buffer.from('{"type":"exit"')

export interface EventRelayOptions {
  route: AgentEventStreamName
  /** Longest exit line (the run's result): the agent client's reply cap. */
  maxExitLineBytes: number
  /** Without an exit by then, the agent is given up on; time spent waiting for the consumer does not count. */
  deadlineMs: number
  /** Stops the agent's stream (HTTP/2 cancel): the agent kills the command. */
  cancel: () => void
  /** The error event that reports a fault of the agent (the API's code and sentence for it). */
  describe: (fault: Error) => ErrorEvent
  /** Each event as it is passed on (the exec history's copy). */
  onEvent?: (event: OutputEvent) => void
}

export class EventRelay extends Readable {
  readonly #source: Readable
  readonly #o: EventRelayOptions
  #partial: Buffer[] = []
  #partialBytes = 0
  /** The last event was passed on (or the relay gave up): nothing more is read. */
  #over = false
  /** The source is paused because the consumer is full. */
  #held = false
  #deadline: NodeJS.Timeout | undefined

  constructor(source: Readable, o: EventRelayOptions) {
    super({ highWaterMark: 64 * 1024 })
    this.#source = source
    this.#o = o
    source.on('data', (c: Buffer) => this.#onData(c))
    source.once('end', () => this.#fail(new AgentUnavailableError('the agent ended the stream before the command ended')))
    source.once('close', () => this.#fail(new AgentUnavailableError('the agent stream closed before the command ended')))
    source.on('error', (e: Error) => this.#fail(new AgentUnavailableError(e.message)))
    this.#arm(o.deadlineMs)
    // The agent client hands the stream over paused, at its headers.
    source.resume()
  }

  override _read(): void {
    if (this.#held && !this.#over) {
      this.#held = false
      this.#source.resume()
    }
  }

  /** The consumer went away before the end (client disconnected): the command is not wanted. */
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.#over) {
      this.#over = true
      this.#stop()
    }
    cb(err)
  }

  #arm(ms: number): void {
    this.#deadline = setTimeout(() => {
      // A consumer that reads slowly holds the command back; that is not the agent's delay.
      if (this.#held) return this.#arm(Math.min(ms, 15_000))
      this.#fail(new AgentUnavailableError(`the command did not end within ${this.#o.deadlineMs} ms`))
    }, ms)
    this.#deadline.unref?.()
  }

  #onData(chunk: Buffer): void {
    let start = 0
    let nl: number
    while (!this.#over && (nl = chunk.indexOf(NEWLINE, start)) >= 0) {
      const tail = chunk.subarray(start, nl)
      if (this.#tooLong(this.#partialBytes + tail.length, tail)) return
      const line = this.#partialBytes > 0 ? Buffer.concat([...this.#partial, tail]) : tail
      this.#partial = []
      this.#partialBytes = 0
      start = nl + 1
      this.#onLine(line)
    }
    if (this.#over || start === chunk.length) return
    const rest = chunk.subarray(start)
    if (this.#tooLong(this.#partialBytes + rest.length, rest)) return
    // A copy: a view would keep the whole chunk alive for a few bytes of it.
    this.#partial.push(Buffer.from(rest))
    this.#partialBytes += rest.length
  }

  #tooLong(bytes: number, tail: Buffer): boolean {
    if (bytes <= MAX_EVENT_LINE_BYTES) return false
    const head = this.#partialBytes > 0 ? this.#partial[0]! : tail
    const max = head.subarray(0, EXIT_PREFIX.length).equals(EXIT_PREFIX) ? this.#o.maxExitLineBytes : MAX_EVENT_LINE_BYTES
    if (bytes <= max) return false
    this.#fail(new AgentReplyTooLargeError(max))
    return true
  }

  #onLine(line: Buffer): void {
    let value: unknown
    try {
      value = JSON.parse(line.toString('utf8'))
    } catch {
      return this.#fail(new AgentReplyInvalidError(this.#o.route, 'a line of the event stream is not JSON'))
    }
    const problem = mismatch(OutputEvent, value)
    if (problem !== undefined) return this.#fail(new AgentReplyInvalidError(this.#o.route, `event: ${problem}`))
    const event = value as OutputEvent
    if (event.type === 'stdout' || event.type === 'stderr') {
      if ((event.data === undefined) === (event.dataBase64 === undefined)) return this.#fail(new AgentReplyInvalidError(this.#o.route, 'a chunk event needs exactly one of data and dataBase64'))
      return this.#pass(event)
    }
    if (event.type === 'error') {
      // The agent's own failure keeps its sentence; its code must be one of the protocol's.
      if (!(AgentErrorCodes as readonly string[]).includes(event.code)) return this.#fail(new AgentReplyInvalidError(this.#o.route, 'error event: code is not one of the protocol'))
      return this.#fail(new AgentRefusedError(this.#o.route, 500, event.code as (typeof AgentErrorCodes)[number], event.message))
    }
    this.#finish(event)
  }

  #pass(event: OutputEvent): void {
    this.#o.onEvent?.(event)
    if (!this.push(jsonLine(event)) && !this.#over) {
      this.#held = true
      this.#source.pause()
    }
  }

  #finish(last: OutputEvent): void {
    this.#pass(last)
    this.#over = true
    clearTimeout(this.#deadline)
    this.#source.removeAllListeners('data')
    this.#source.resume() // whatever follows is read and dropped, so the stream can close
    this.push(null)
  }

  #fail(fault: Error): void {
    if (this.#over) return
    this.#stop()
    this.#finish(this.#o.describe(fault))
  }

  #stop(): void {
    clearTimeout(this.#deadline)
    this.#o.cancel()
  }
}
