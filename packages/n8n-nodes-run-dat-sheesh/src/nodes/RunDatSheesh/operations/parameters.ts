// Turning the node's parameters into the API's shapes.
import type { IDataObject } from 'n8n-workflow'

/** "a, b ,c" → ["a","b","c"]; an expression may also give an array. */
export function commaList(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String).map((s) => s.trim()).filter(Boolean)
  return String(value ?? '').split(',').map((s) => s.trim()).filter(Boolean)
}

interface KeyValue { name?: string; value?: string }

/** A name/value fixedCollection as an object (env of exec). */
export function keyValueObject(collection: unknown): Record<string, string> {
  const rows = ((collection as IDataObject | undefined)?.variables ?? []) as KeyValue[]
  const out: Record<string, string> = {}
  for (const r of rows) if (r.name) out[r.name] = r.value ?? ''
  return out
}

/** The same as "KEY=value" entries (secretEnv of a create, env of a run). */
export function keyValueList(collection: unknown): string[] {
  return Object.entries(keyValueObject(collection)).map(([k, v]) => `${k}=${v}`)
}

export const encodePath = (s: string) => encodeURIComponent(s)
