// JavaScript that runs inside the user's runtime (Deno or Node) as part of the run wrapper. It
// is kept as source text, not a function, so bundling the agent cannot rewrite it; tests
// evaluate the same text.

/** Defines `__rdsSerializeError(e)` and `__rdsStringify(v)`. */
export const SERIALIZE_SOURCE = String.raw`
const __rdsSerializeError = (e) => {
  if (typeof e === 'string') return { name: 'Error', message: e }
  if (e !== null && typeof e === 'object') {
    if (typeof e.message === 'string' && ('name' in e || 'stack' in e || e instanceof Error)) {
      const out = { name: typeof e.name === 'string' ? e.name : 'Error', message: e.message }
      if (typeof e.stack === 'string') out.stack = e.stack
      return out
    }
    return e
  }
  return { name: 'Error', message: String(e) }
};
const __rdsStringify = (v) => {
  const seen = new WeakSet()
  return JSON.stringify(v, function (_k, x) {
    if (typeof x === 'bigint') return x.toString()
    if (x !== null && typeof x === 'object') {
      if (seen.has(x)) return '[Circular]'
      seen.add(x)
    }
    return x
  })
};
`

/** Evaluates SERIALIZE_SOURCE in this process; for tests and for checking it parses. */
export function loadSerializers(): { serializeError: (e: unknown) => unknown; stringify: (v: unknown) => string } {
  const make = new Function(`${SERIALIZE_SOURCE}; return { serializeError: __rdsSerializeError, stringify: __rdsStringify }`)
  return make()
}
