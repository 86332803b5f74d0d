// Where a file API path leads, by the same rules as uploads and downloads (paths.ts): it names
// /workspace (absolute or relative to it) and must stay in it after symlinks are resolved. The
// public name (`pub`) is what answers state; the resolved one (`real`) is what the user's worker
// gets. Operations on a name itself (stat, list, delete, move) resolve only its parent, so a
// symlink is seen, removed or moved as the link it is; reads, writes and chmod follow it, and it
// must then lead somewhere inside.
import path from 'node:path'
import { AgentFailure } from '../errors.ts'
import { resolveConfined, workspaceRelative, type PathRoots } from './paths.ts'

export interface Located {
  pub: string
  real: string
  /** Whether it exists (known only when followed). */
  exists?: boolean
  /** The workspace itself. */
  isRoot: boolean
}

export async function locate(input: string, policy: PathRoots, o: { follow: boolean; what?: string }): Promise<Located> {
  const what = o.what ?? 'path'
  const rel = workspaceRelative(input, policy.base, what)
  const pub = rel ? path.posix.join(policy.base, rel) : policy.base
  if (o.follow || rel === '') {
    const r = await resolveConfined(input, policy, what)
    return { pub, real: r.path, exists: r.exists, isRoot: rel === '' }
  }
  const parent = await resolveConfined(path.posix.dirname(pub), policy, what)
  return { pub, real: path.join(parent.path, path.posix.basename(pub)), isRoot: false }
}

/** The workspace itself may be listed, read from and written into, never removed or moved. */
export function refuseRoot(l: Located, action: string): void {
  if (l.isRoot) throw new AgentFailure('path_not_allowed', `cannot ${action} /workspace itself`)
}

const GLOB_CHARS = /[*?[\]{}]/

export interface GlobPlan {
  /** The pattern relative to the workspace, `.` segments dropped. */
  pattern: string
  /** Its leading segments without glob characters: where the walk starts. */
  prefix: string
}

/** A glob pattern under /workspace: absolute or relative, never with `..` segments. */
export function planGlob(input: string, base: string): GlobPlan {
  let p = input.trim()
  if (p.includes('\0')) throw new AgentFailure('invalid_request', 'pattern must not contain NUL')
  if (p.startsWith('/')) {
    if (p !== base && !p.startsWith(`${base}/`)) throw new AgentFailure('path_not_allowed', `Only /workspace paths are allowed (pattern ${JSON.stringify(input)})`)
    p = p.slice(base.length)
  }
  const segments = p.split('/').filter((s) => s !== '' && s !== '.')
  if (segments.includes('..')) throw new AgentFailure('path_not_allowed', `Path escapes /workspace (pattern ${JSON.stringify(input)})`)
  if (segments.length === 0) throw new AgentFailure('invalid_request', 'pattern must name something under /workspace')
  const fixed: string[] = []
  for (const s of segments) {
    if (GLOB_CHARS.test(s)) break
    fixed.push(s)
  }
  return { pattern: segments.join('/'), prefix: fixed.join('/') }
}
