// From what fs.watch reports (inotify underneath: "rename" for a name that appeared or went,
// "change" for contents or attributes) to the file API's events. inotify delivers the two halves
// of a move back to back, so a remove immediately followed by a create in one batch is reported
// as one rename; a delete and an unrelated create landing exactly so look the same (documented).
export interface RawWatchEvent {
  kind: 'rename' | 'change'
  /** Relative to the watched directory. */
  name: string
}

export interface WatchEvent {
  type: 'create' | 'write' | 'remove' | 'rename'
  path: string
  from?: string
}

/**
 * `exists[i]`: whether raw[i]'s path existed once the batch settled. A name that appeared and went
 * several times in one batch alternates create/remove, ending with what is there now. Repeated
 * writes to one path in a batch are reported once.
 */
export function coalesceEvents(raw: readonly RawWatchEvent[], exists: readonly boolean[]): WatchEvent[] {
  // Walk backwards per name: its last rename matches the final state, the ones before alternate.
  const nowThere = new Map<string, boolean>()
  const kinds: ('create' | 'remove' | 'write')[] = new Array(raw.length)
  for (let i = raw.length - 1; i >= 0; i--) {
    const e = raw[i]!
    if (e.kind === 'change') {
      kinds[i] = 'write'
      continue
    }
    const there = nowThere.has(e.name) ? !nowThere.get(e.name)! : exists[i]!
    nowThere.set(e.name, there)
    kinds[i] = there ? 'create' : 'remove'
  }
  const out: WatchEvent[] = []
  const written = new Set<string>()
  for (let i = 0; i < raw.length; i++) {
    const name = raw[i]!.name
    const kind = kinds[i]!
    if (kind === 'write') {
      if (written.has(name)) continue
      written.add(name)
      out.push({ type: 'write', path: name })
      continue
    }
    written.delete(name)
    const prev = out.at(-1)
    if (kind === 'create' && prev?.type === 'remove' && prev.path !== name && raw[i - 1]?.kind === 'rename') {
      out[out.length - 1] = { type: 'rename', path: name, from: prev.path }
      continue
    }
    out.push({ type: kind, path: name })
  }
  return out
}
