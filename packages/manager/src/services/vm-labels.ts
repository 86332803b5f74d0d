// Labels: a VM's {key: value} tags, for finding VMs again (GET /v1/vms?label=k=v) and for what
// other APIs call metadata (E2B's sandbox metadata maps here). Keys follow Kubernetes label keys,
// which every tool that writes labels already respects; values are free text, since metadata
// values (user ids, task names) are, but bounded and without control characters, because they
// end up in logs, terminals and the console.
import { Errors } from '../errors.ts'
import type { LabelFilter } from '../store/vms-repo.ts'

export const MAX_LABELS = 32
export const MAX_LABEL_VALUE_LENGTH = 256
const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
// Tab, newline and the other C0/C1 controls and DEL.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

/** Why `key` is not a label key, or undefined when it is one: `name` or `prefix/name`, prefix a DNS subdomain. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/')
  const prefix = slash === -1 ? undefined : key.slice(0, slash)
  const name = slash === -1 ? key : key.slice(slash + 1)
  if (!NAME.test(name)) return 'the name part must be 1-63 characters of letters, digits, "-", "_" and ".", starting and ending with a letter or digit'
  if (prefix !== undefined && (prefix.length > 253 || !prefix.split('.').every((l) => DNS_LABEL.test(l)))) return 'the prefix before "/" must be a lower-case DNS name (at most 253 characters)'
  return undefined
}

/** The labels as given, or invalid_labels naming the first offending key. */
export function validateLabels(labels: Record<string, string>): Record<string, string> {
  const keys = Object.keys(labels)
  if (keys.length > MAX_LABELS) throw Errors.invalidLabels(`Too many labels: ${keys.length} (at most ${MAX_LABELS})`)
  for (const key of keys) {
    const problem = labelKeyProblem(key)
    if (problem) throw Errors.invalidLabels(`Invalid label key ${JSON.stringify(key.slice(0, 80))}: ${problem}`)
    const value = labels[key]
    if (typeof value !== 'string') throw Errors.invalidLabels(`Label ${key}: the value must be a string`)
    if (value.length > MAX_LABEL_VALUE_LENGTH) throw Errors.invalidLabels(`Label ${key}: the value is longer than ${MAX_LABEL_VALUE_LENGTH} characters`)
    if (CONTROL.test(value)) throw Errors.invalidLabels(`Label ${key}: the value holds a control character`)
  }
  return { ...labels }
}

/**
 * A PATCH: `null` removes a key, a string sets it; the result is checked as a whole (the limit
 * counts what the VM ends up with).
 */
export function mergeLabels(current: Record<string, string>, patch: Record<string, string | null>): Record<string, string> {
  const next = { ...current }
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete next[key]
    else next[key] = value
  }
  return validateLabels(next)
}

/** `?label=key=value` (that value) or `?label=key` (any value); every entry must match. */
export function parseLabelFilter(raw: string | string[] | undefined): LabelFilter {
  const items = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]
  if (items.length > MAX_LABELS) throw Errors.invalidLabels(`Too many label filters: ${items.length} (at most ${MAX_LABELS})`)
  return items.map((item) => {
    const eq = item.indexOf('=')
    const key = eq === -1 ? item : item.slice(0, eq)
    const problem = labelKeyProblem(key)
    if (problem) throw Errors.invalidLabels(`Invalid label filter ${JSON.stringify(item.slice(0, 80))}: write key=value or key; ${problem}`)
    return { key, value: eq === -1 ? null : item.slice(eq + 1) }
  })
}
