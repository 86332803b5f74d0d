// Path policy, in two steps. First the original run-dat-sheesh's lexical contract: a path names
// /workspace (absolute, or relative to it) and never escapes it, so `/home/user/x` or `/tmp/x` is
// refused even where it is the same directory. Then the path is resolved with realpath (symlinks
// followed) and must still land in the workspace. Both are checks for clear errors, not the
// security boundary: every operation on a user path afterwards runs as the unprivileged user
// (rds-exec), so a component swapped for a symlink after the check only reaches what the user
// could reach anyway. Root itself only ever stat()s/realpath()s user paths.
import fs from 'node:fs/promises'
import path from 'node:path'
import { AgentFailure } from '../errors.ts'

export interface PathRoots {
  /** The workspace as user code names it (/workspace): API paths are under it or relative to it. */
  base: string
  /** Where paths may resolve to: the workspace under its names, realpath'd once (see `realRoots`). */
  roots: readonly string[]
}

/**
 * The original's lexical rule, checked before the filesystem is looked at, so a refused path is
 * always a 400 and never depends on what exists. Returns the path relative to the workspace.
 */
export function workspaceRelative(input: string, base: string, what = 'path'): string {
  const trimmed = input.trim()
  if (trimmed === '' || trimmed.includes('\0')) throw new AgentFailure('invalid_request', `${what} must be a non-empty path`)
  let rel: string
  if (trimmed.startsWith('/')) {
    if (trimmed !== base && !trimmed.startsWith(`${base}/`)) {
      throw new AgentFailure('path_not_allowed', `Only /workspace paths are allowed (${what} ${JSON.stringify(input)})`)
    }
    rel = path.posix.relative(base, path.posix.normalize(trimmed))
  } else {
    rel = path.posix.normalize(trimmed)
  }
  if (rel === '..' || rel.startsWith('../')) throw new AgentFailure('path_not_allowed', `Path escapes /workspace (${what} ${JSON.stringify(input)})`)
  return rel === '.' ? '' : rel
}

export async function realRoots(roots: readonly string[]): Promise<string[]> {
  const out: string[] = []
  for (const r of roots) {
    try {
      out.push(await fs.realpath(r))
    } catch {
      // A missing root (e.g. no /tmp yet) simply allows nothing under it.
    }
  }
  return out
}

export function isInside(p: string, root: string): boolean {
  if (root === '/') return true
  return p === root || p.startsWith(root + '/')
}

export interface Resolved {
  /** Fully resolved path (symlinks of the existing prefix followed). */
  path: string
  exists: boolean
}

/**
 * Resolves `input` against the roots. A path that does not exist yet resolves through its
 * longest existing prefix, so `dest` of an upload may name a directory still to be created.
 */
export async function resolveConfined(input: string, policy: PathRoots, what = 'path'): Promise<Resolved> {
  const lexical = path.join(policy.base, workspaceRelative(input, policy.base, what))
  const resolved = await realpathLongestPrefix(lexical)
  if (!policy.roots.some((r) => isInside(resolved.path, r))) {
    throw new AgentFailure('path_not_allowed', `${what} ${JSON.stringify(input)} leads out of /workspace through a symbolic link`)
  }
  return resolved
}

export async function resolveExisting(input: string, policy: PathRoots, what = 'path'): Promise<string> {
  const r = await resolveConfined(input, policy, what)
  if (!r.exists) throw new AgentFailure('path_not_found', `${what} ${JSON.stringify(input)} does not exist`)
  return r.path
}

async function realpathLongestPrefix(abs: string): Promise<Resolved> {
  const rest: string[] = []
  let cur = abs
  // Dangling symlinks are followed by hand, so a link to a not-yet-existing outside path is
  // judged by where it points; the hop limit mirrors the kernel's ELOOP.
  for (let hops = 0; hops < 40; ) {
    try {
      const real = await fs.realpath(cur)
      return { path: rest.length ? path.join(real, ...[...rest].reverse()) : real, exists: rest.length === 0 }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      // ENOTDIR: a prefix is a file; the full path can't exist, keep walking up to report it.
      if (code === 'ELOOP') throw new AgentFailure('path_not_allowed', 'too many levels of symbolic links')
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e
      const st = await fs.lstat(cur).catch(() => undefined)
      if (st?.isSymbolicLink()) {
        cur = path.resolve(path.dirname(cur), await fs.readlink(cur))
        hops++
        continue
      }
      const parent = path.dirname(cur)
      if (parent === cur) return { path: abs, exists: false }
      rest.push(path.basename(cur))
      cur = parent
    }
  }
  throw new AgentFailure('path_not_allowed', 'too many levels of symbolic links')
}
