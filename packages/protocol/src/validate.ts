// Both ends check what crosses the channel against the schemas of this package: the agent its
// requests and bridge replies, the manager every agent reply and bridge frame. Checkers are
// compiled once per schema, on first use, so a module that never checks a shape pays nothing.
import type { Static, TSchema } from 'typebox'
import { Compile } from 'typebox/compile'

type Checker = ReturnType<typeof Compile>

const checkers = new WeakMap<TSchema, Checker>()

function checkerOf(schema: TSchema): Checker {
  let c = checkers.get(schema)
  if (!c) checkers.set(schema, (c = Compile(schema)))
  return c
}

export function matches<S extends TSchema>(schema: S, value: unknown): value is Static<S> {
  return checkerOf(schema).Check(value)
}

/** A reason travels inside error messages; a place made of the sender's own keys could be long. */
const MAX_REASON_CHARS = 200

/**
 * Why `value` does not match `schema`, as `<json pointer>: <rule>` of the first failure, or
 * undefined when it matches. It names a place and a rule, never a value: the sender may be hostile,
 * and what it sent must not travel on inside an error message.
 */
export function mismatch(schema: TSchema, value: unknown): string | undefined {
  const c = checkerOf(schema)
  if (c.Check(value)) return undefined
  const first = c.Errors(value)[0]
  return `${first?.instancePath || '(body)'}: ${first?.message ?? 'invalid'}`.slice(0, MAX_REASON_CHARS)
}
