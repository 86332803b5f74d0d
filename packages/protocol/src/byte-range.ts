// HTTP byte ranges (RFC 9110 §14): the public API takes a `Range: bytes=…` header, the manager
// passes its one range to the agent as text, and the agent resolves it against the file's size.
// Only single ranges are served; a multi-range request is refused like any range that cannot be.

export type RangeSpec = { kind: 'from'; start: number; end?: number } | { kind: 'suffix'; length: number }

/** A resolved range: bytes start..end inclusive, of a file of `size` bytes. */
export interface ByteRange {
  start: number
  end: number
  size: number
}

const SPEC = /^(?:(\d{1,15})-(\d{1,15})?|-(\d{1,15}))$/

/** "bytes=0-99" → its spec; undefined when the header is malformed, multi-range or of another unit. */
export function parseRangeHeader(header: string): RangeSpec | undefined {
  const m = /^\s*bytes\s*=\s*([^,]*?)\s*$/i.exec(header)
  return m ? parseRangeSpec(m[1]!) : undefined
}

/** The part after "bytes=" (also what the agent gets). */
export function parseRangeSpec(text: string): RangeSpec | undefined {
  const m = SPEC.exec(text)
  if (!m) return undefined
  if (m[3] !== undefined) {
    const length = Number(m[3])
    return length > 0 ? { kind: 'suffix', length } : undefined
  }
  const start = Number(m[1])
  if (m[2] === undefined) return { kind: 'from', start }
  const end = Number(m[2])
  return end >= start ? { kind: 'from', start, end } : undefined
}

export function formatRangeSpec(spec: RangeSpec): string {
  return spec.kind === 'suffix' ? `-${spec.length}` : `${spec.start}-${spec.end ?? ''}`
}

/** The bytes a spec names in a file of `size` bytes, or undefined when none of them exist (416). */
export function resolveRange(spec: RangeSpec, size: number): ByteRange | undefined {
  if (spec.kind === 'suffix') {
    if (size === 0) return undefined
    return { start: Math.max(0, size - spec.length), end: size - 1, size }
  }
  if (spec.start >= size) return undefined
  return { start: spec.start, end: Math.min(spec.end ?? size - 1, size - 1), size }
}

export const contentRange = (r: ByteRange): string => `bytes ${r.start}-${r.end}/${r.size}`
