import { describe, expect, it } from 'vitest'
import { loadConfig } from '../src/config.ts'
import { baseEnv, checkEnvRecord, parseEnvList } from '../src/sandbox/env.ts'

describe('env list parsing', () => {
  it('parses KEY=value entries, keeping = in values and empty values', () => {
    expect([...parseEnvList(['A=1', 'B_2=x=y', '_C='])]).toEqual([
      ['A', '1'],
      ['B_2', 'x=y'],
      ['_C', ''],
    ])
    expect(parseEnvList(undefined).size).toBe(0)
  })

  it('refuses entries without = with the original message', () => {
    expect(() => parseEnvList(['NOPE'])).toThrow('Invalid env entry (expected KEY=value): NOPE')
  })

  it('refuses bad names with the original message', () => {
    expect(() => parseEnvList(['1A=x'])).toThrow('Invalid env var name: 1A')
    expect(() => parseEnvList(['A-B=x'])).toThrow('Invalid env var name: A-B')
    // The manager's reading (protocol env-list.ts): an empty name is no KEY=value entry.
    expect(() => parseEnvList(['=x'])).toThrow('Invalid env entry (expected KEY=value): =x')
  })

  it('refuses NUL bytes in values as invalid_request, which execve would refuse', () => {
    expect(() => parseEnvList(['A=x\0y'])).toThrow(expect.objectContaining({ code: 'invalid_request', message: 'Invalid env value for A: contains NUL' }))
  })

  it('applies the same name rule to the exec env record', () => {
    expect(checkEnvRecord({ FOO: 'bar' })).toEqual({ FOO: 'bar' })
    expect(() => checkEnvRecord({ 'A B': 'x' })).toThrow('Invalid env var name: A B')
    expect(() => checkEnvRecord({ A: 'x\0y' })).toThrow(/NUL/)
  })

  it('builds a login-like base environment', () => {
    const env = baseEnv(loadConfig({}))
    expect(env).toMatchObject({ PATH: '/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin', HOME: '/home/user', USER: 'user', LANG: 'C.UTF-8', TMPDIR: '/tmp', TERM: 'dumb' })
  })
})
