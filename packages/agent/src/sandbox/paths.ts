// Path policy. Paths are resolved with realpath (symlinks followed) and must land inside one of
// the allowed roots. This is a policy check for clear errors, not the security boundary: every
// operation on a user path afterwards runs as the unprivileged user (rds-exec), so a component
// swapped for a symlink after the check only reaches what the user could reach anyway. Root
// itself only ever stat()s/realpath()s user paths.
import fs from 'node:fs/promises'
import path from 'node:path'
import { AgentFailure } from '../errors.ts'

export interface PathRoots {
  /** Relative paths are taken relative to this (the workspace). */
  base: string
  /** Allowed roots; they are realpath'd by the caller once (see `realRoots`). */
  roots: readonly string[]
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
  const trimmed = input.trim()
  if (trimmed === '' || trimmed.includes('\0')) throw new AgentFailure('invalid_request', `${what} must be a non-empty path`)
  const lexical = path.resolve(policy.base, trimmed)
  const resolved = await realpathLongestPrefix(lexical)
  if (!policy.roots.some((r) => isInside(resolved.path, r))) {
    throw new AgentFailure('path_not_allowed', `${what} ${JSON.stringify(input)} is outside the allowed directories`)
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
