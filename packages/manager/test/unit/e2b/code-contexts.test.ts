// The code interpreter's pure parts: the driver's lines read as hostile input, and a context's
// record in its process tag.
import { describe, expect, it } from 'vitest'
import type { OutputEvent } from '@rds/protocol'
import { driverMessagesOf, e2bLineOf, MAX_DRIVER_LINE_BYTES } from '../../../src/services/e2b/interpreter/driver-messages.ts'
import { contextCwdOf, contextOf, isCodeContextProcess, languageOf, tagOf } from '../../../src/services/e2b/interpreter/code-contexts.ts'

async function collect(events: OutputEvent[]) {
  const out = []
  for await (const m of driverMessagesOf((async function* () { yield* events })())) out.push(m)
  return out
}
const stdout = (data: string, extra: Partial<OutputEvent> = {}): OutputEvent => ({ type: 'stdout', data, ...extra }) as OutputEvent

describe('driver messages', () => {
  it('joins lines cut across chunks, checks each, and skips what does not match', async () => {
    const ms = await collect([
      stdout('{"type":"ready"}\n{"id":"e1","type":"stdo'),
      stdout('ut","text":"hi\\n"}\nnot json\n{"id":"e1","type":"result","is_main_result":"yes"}\n'),
      { type: 'stderr', data: '{"type":"ready"}\n' } as OutputEvent,
      stdout('{"id":"e1","type":"end_of_execution"}\n'),
      { type: 'exit', exitCode: 0, timedOut: false, durationMs: 1 },
    ])
    expect(ms).toEqual([{ type: 'ready' }, { id: 'e1', type: 'stdout', text: 'hi\n' }, { id: 'e1', type: 'end_of_execution' }, { type: 'gone', exitCode: 0 }])
  })

  it('drops a line cut by bytes the replay buffer lost, and an over-long line, without holding it', async () => {
    const ms = await collect([
      stdout('{"id":"e1","type":"stdout","text":"a'),
      stdout('b"}\n{"id":"e1","type":"end_of_execution"}\n', { skipped: 10 }),
      stdout('x'.repeat(MAX_DRIVER_LINE_BYTES + 1)),
      stdout('x\n{"id":"e2","type":"end_of_execution"}\n'),
    ])
    expect(ms).toEqual([{ id: 'e1', type: 'end_of_execution' }, { id: 'e2', type: 'end_of_execution' }, { type: 'gone' }])
  })

  it('passes on only the fields E2B\'s NDJSON has', () => {
    const line = e2bLineOf({ id: 'e1', type: 'result', is_main_result: true, text: '2', html: '<b>2</b>', extra: 'no' } as never)
    expect(line).toEqual({ type: 'result', is_main_result: true, text: '2', html: '<b>2</b>' })
    expect(e2bLineOf({ id: 'e1', type: 'error', name: 'ValueError', value: 'bad', traceback: 'tb' })).toEqual({ type: 'error', name: 'ValueError', value: 'bad', traceback: 'tb' })
  })
})

describe('context records', () => {
  it('keeps a context in its process tag and reads it back', () => {
    const c = { id: 'c0ffee', language: 'python' as const, cwd: '/home/user/my dir', isDefault: false }
    const tag = tagOf(c)
    expect(tag.length).toBeLessThanOrEqual(256)
    const p = { pid: 7, tag, cmd: 'python3', state: 'running' as const, startedAt: '', stdin: true, stdoutBytes: 0, stderrBytes: 0, readers: 0 }
    expect(isCodeContextProcess(p)).toBe(true)
    expect(contextOf(p)).toEqual({ ...c, pid: 7, running: true })
    expect(contextOf({ ...p, tag: 'mine' })).toBeUndefined()
    expect(contextOf({ ...p, tag: 'e2b-code-context x ruby extra %2F' })).toBeUndefined()
  })

  it('runs Python only, and takes E2B\'s directories', () => {
    for (const l of [undefined, null, '', 'python', 'Python3']) expect(languageOf(l)).toBe('python')
    for (const l of ['js', 'ts', 'javascript', 'r', 'bash']) expect(() => languageOf(l)).toThrow(/Python only/)
    expect(contextCwdOf(undefined)).toBe('/home/user')
    expect(contextCwdOf('proj')).toBe('/home/user/proj')
    expect(contextCwdOf('/tmp')).toBe('/tmp')
    expect(() => contextCwdOf(`/${'a'.repeat(200)}`)).toThrow()
  })
})
