// "KEY=value" lists: the public API's run `env` and `secretEnv`, and RunRequest.env on the wire.
// One reading for both ends, with the original's rules and sentences: the manager refuses a bad
// list before it reaches a guest, and the agent reads what the manager sent the same way.

/** Names a shell and Deno's --allow-env accept. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * Why a list was refused. `index` is the entry's position; `message` is the original's sentence,
 * which repeats the entry or its name: a caller reading a list of secrets words its own from `kind`.
 */
export class EnvListError extends Error {
  readonly kind: 'not_a_list' | 'not_a_string' | 'not_key_value' | 'bad_name'
  readonly index: number
  constructor(kind: EnvListError['kind'], index: number, message: string) {
    super(message)
    this.kind = kind
    this.index = index
  }
}

/**
 * Entries in order; a later entry of the same name wins. A Map, not an object: a name such as
 * `__proto__` is a valid variable and must stay one. Values are not judged here (NUL bytes are the
 * agent's concern: execve refuses them).
 */
export function parseEnvList(list: unknown): Map<string, string> {
  if (!Array.isArray(list)) throw new EnvListError('not_a_list', -1, 'env must be an array of strings in the format KEY=value')
  const out = new Map<string, string>()
  list.forEach((entry: unknown, index) => {
    if (typeof entry !== 'string') throw new EnvListError('not_a_string', index, 'env entries must be strings in the format KEY=value')
    const eq = entry.indexOf('=')
    if (eq <= 0) throw new EnvListError('not_key_value', index, `Invalid env entry (expected KEY=value): ${entry}`)
    const name = entry.slice(0, eq)
    if (!ENV_NAME.test(name)) throw new EnvListError('bad_name', index, `Invalid env var name: ${name}`)
    out.set(name, entry.slice(eq + 1))
  })
  return out
}

export const toEnvList = (env: Iterable<[string, string]>): string[] => Array.from(env, ([name, value]) => `${name}=${value}`)
