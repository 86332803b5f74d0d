// One entry of a listing, stat or glob, as the file API states it: the type from lstat (a link is
// a link), the permission bits as octal text, the time in ISO 8601, and the public path.
import type { Stats } from 'node:fs'
import type { WireEntry } from './file-worker-wire.ts'

export function entryOf(st: Pick<Stats, 'isFile' | 'isDirectory' | 'isSymbolicLink' | 'size' | 'mode' | 'mtime'>, name: string, publicPath: string): WireEntry {
  const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other'
  return { name, path: publicPath, type, size: st.size, mode: (st.mode & 0o7777).toString(8).padStart(3, '0'), mtime: st.mtime.toISOString() }
}
