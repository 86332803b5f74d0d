// What the exec history keeps of one call, without VMs: secrets masked (values, keys, short
// values, before any cut) and every field capped. Retention per VM is tested on both databases
// in store-postgres.test.ts; the real path through a VM in security/hardening.test.ts.
import { describe, expect, it } from 'vitest'
import { StreamedCallRecord } from '../../src/services/exec-stream-history.ts'
import { historyOf, maskSecrets } from '../../src/services/vm-exec.ts'

const CAP = 16 * 1024
const ok = (extra: Record<string, unknown> = {}) => ({ exitCode: 0, stdout: '', stderr: '', timedOut: false, stdoutTruncated: false, stderrTruncated: false, durationMs: 1, ...extra })

describe('maskSecrets', () => {
  it('masks values of 4+ characters anywhere, in strings and in object keys', () => {
    const secrets = { TOKEN: 'tok-abc-123' }
    expect(maskSecrets({ 'tok-abc-123': { ['x tok-abc-123']: 'a tok-abc-123 b' } }, secrets)).toEqual({ '[secret TOKEN]': { 'x [secret TOKEN]': 'a [secret TOKEN] b' } })
  })

  it('masks shorter values only where a whole string or key equals them', () => {
    const secrets = { PIN: '42', EMPTY: '' }
    expect(maskSecrets({ pin: '42', text: 'answer 42', '42': 'key', n: 42, e: '' }, secrets)).toEqual({ pin: '[secret PIN]', text: 'answer 42', '[secret PIN]': 'key', n: 42, e: '' })
  })

  it('masks the longer of two overlapping secrets whole, and never inside a marker', () => {
    const secrets = { SHORT: 'abcd', LONG: 'abcdefgh', WORD: 'secret' }
    expect(maskSecrets('x abcdefgh y abcd z secret', secrets)).toBe('x [secret LONG] y [secret SHORT] z [secret WORD]')
  })

  it('treats secret values as text, not as patterns', () => {
    expect(maskSecrets('a.b* and axb', { P: 'a.b*' })).toBe('[secret P] and axb')
  })

  it('keeps a "__proto__" key a key', () => {
    const v = JSON.parse('{"__proto__":{"polluted":"tok-abc-123"}}')
    const masked = maskSecrets(v, { T: 'tok-abc-123' }) as Record<string, unknown>
    expect(Object.hasOwn(masked, '__proto__')).toBe(true)
    expect((masked as { polluted?: unknown }).polluted).toBeUndefined()
    expect(JSON.stringify(masked)).toBe('{"__proto__":{"polluted":"[secret T]"}}')
  })
})

describe('historyOf', () => {
  it('masks before cutting: a secret across the output cap leaves no part of it', () => {
    const secret = 'sk-live-0123456789'
    const stdout = `${'a'.repeat(CAP - 6)}${secret} tail`
    const h = historyOf({ cmd: 'x' }, ok({ stdout }), { KEY: secret })
    expect(h.result.stdout).not.toContain(secret.slice(0, 6))
    expect((h.result.stdout as string).endsWith('…[truncated]')).toBe(true)
  })

  it('caps command and code text and the JSON of results and errors, flagging the cut', () => {
    const long = 'y'.repeat(3 * CAP)
    const h = historyOf({ cmd: long, code: long, args: [long] }, ok({ result: { big: long }, error: { message: long } }), {})
    for (const v of [h.input.cmd, h.input.code, h.input.args, h.result.result, h.result.error]) expect((v as string).length).toBeLessThanOrEqual(CAP + 20)
    expect(h.input.argsTruncated).toBe(true)
    expect(h.result.resultTruncated).toBe(true)
    expect(h.result.errorTruncated).toBe(true)
    expect(JSON.stringify(h).length).toBeLessThan(8 * CAP)
  })

  it('keeps small values as they are', () => {
    const h = historyOf({ cmd: 'echo hi', env: ['A'] }, ok({ stdout: 'hi\n', result: { a: [1, 2] } }), {})
    expect(h.input).toEqual({ cmd: 'echo hi', env: ['A'] })
    expect(h.result).toMatchObject({ exitCode: 0, stdout: 'hi\n', result: { a: [1, 2] } })
    expect(h.result.resultTruncated).toBeUndefined()
  })
})

describe('a streamed call in the history', () => {
  const chunk = (type: 'stdout' | 'stderr', text: string) => ({ type, data: text }) as const

  it('keeps the head of each stream, enough past the cut that a secret across it is still masked whole', () => {
    const secret = 'streamed-secret-value'
    const copy = new StreamedCallRecord(2 * CAP)
    copy.add(chunk('stdout', 'a'.repeat(CAP - 5)))
    copy.add(chunk('stdout', secret))
    copy.add(chunk('stdout', 'b'.repeat(10 * CAP)))
    copy.add({ type: 'stderr', dataBase64: Buffer.from('err\n').toString('base64') })
    copy.add({ type: 'exit', exitCode: 3, timedOut: false, durationMs: 9, stdoutTruncated: true })
    const r = copy.result(100, false)
    expect(r).toMatchObject({ exitCode: 3, stderr: 'err\n', durationMs: 9, stdoutTruncated: true, stderrTruncated: false })
    expect(r.stdout.length).toBe(2 * CAP)
    const h = historyOf({ cmd: 'x', stream: true }, r, { TOKEN: secret })
    expect(h.result.stdout).toBe(`${'a'.repeat(CAP - 5)}[secret TOKEN]`.slice(0, CAP) + '…[truncated]')
    expect(JSON.stringify(h)).not.toContain('streamed-s')
  })

  it('records how the call ended: the run result, an error event, or the client leaving', () => {
    const run = new StreamedCallRecord(CAP)
    run.add({ type: 'exit', exitCode: 0, timedOut: false, durationMs: 1, result: { n: 1 } })
    expect(run.result(5, false)).toMatchObject({ exitCode: 0, result: { n: 1 } })
    const broken = new StreamedCallRecord(CAP)
    broken.add({ type: 'error', code: 'agent_unavailable', message: 'gone' })
    expect(broken.result(5, false)).toMatchObject({ exitCode: -1, error: { code: 'agent_unavailable' }, durationMs: 5 })
    const left = new StreamedCallRecord(CAP)
    left.add(chunk('stdout', 'ready\n'))
    expect(left.result(7, true)).toMatchObject({ exitCode: -1, stdout: 'ready\n', error: { code: 'client_disconnected' } })
  })
})
