// The one reading of "KEY=value" lists, used by the manager (run env, secretEnv) and the agent.
import { expect, it } from 'vitest'
import { EnvListError, parseEnvList, toEnvList } from '../src/env-list.ts'

const refusal = (list: unknown): EnvListError => {
  try {
    parseEnvList(list)
  } catch (e) {
    if (e instanceof EnvListError) return e
    throw e
  }
  throw new Error('the list was accepted')
}

it('keeps order, = inside values, empty values; a later entry of a name wins in place', () => {
  expect([...parseEnvList(['A=1', 'B_2=x=y', '_C=', 'A=3'])]).toEqual([
    ['A', '3'],
    ['B_2', 'x=y'],
    ['_C', ''],
  ])
  expect(parseEnvList([]).size).toBe(0)
})

it('refuses entries without a name before = with the original sentence', () => {
  for (const entry of ['NOPE', '=x', '=', '']) {
    const e = refusal(['OK=1', entry])
    expect([e.kind, e.index, e.message]).toEqual(['not_key_value', 1, `Invalid env entry (expected KEY=value): ${entry}`])
  }
})

it('refuses names outside [A-Za-z_][A-Za-z0-9_]* with the original sentence', () => {
  for (const name of ['1A', 'A-B', 'A B', 'É', 'A.B', ' A']) {
    const e = refusal([`${name}=x`])
    expect([e.kind, e.index, e.message]).toEqual(['bad_name', 0, `Invalid env var name: ${name}`])
  }
})

it('refuses what is not a list of strings with the original sentences', () => {
  expect([refusal('A=1').kind, refusal('A=1').message]).toEqual(['not_a_list', 'env must be an array of strings in the format KEY=value'])
  expect([refusal(undefined).kind, refusal({ A: '1' }).kind]).toEqual(['not_a_list', 'not_a_list'])
  const e = refusal(['A=1', 5])
  expect([e.kind, e.index, e.message]).toEqual(['not_a_string', 1, 'env entries must be strings in the format KEY=value'])
})

it('keeps __proto__ a variable, never a prototype', () => {
  const env = parseEnvList(['__proto__=x', 'constructor=y'])
  expect([...env]).toEqual([
    ['__proto__', 'x'],
    ['constructor', 'y'],
  ])
  expect(Object.getPrototypeOf(Object.fromEntries(env))).toBe(Object.prototype)
})

it('does not judge values (NUL bytes are the agent\'s concern) and writes lists back', () => {
  const env = parseEnvList(['A=x\0y', 'B= spaced =', 'C=ünï'])
  expect(toEnvList(env)).toEqual(['A=x\0y', 'B= spaced =', 'C=ünï'])
  expect(toEnvList(Object.entries({ K: 'v' }))).toEqual(['K=v'])
})
