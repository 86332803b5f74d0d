// E2B's user `user` has its home at /home/user, which is the directory our /workspace names.
// Here, and only in the E2B layer, E2B's paths (absolute under /home/user, or relative to it)
// become ours and back. Nothing is confined here: a mapped path goes to the same agent calls as
// our file API's, which refuse anything outside /workspace exactly as they do for /v1.
import path from 'node:path/posix'

export const E2B_HOME = '/home/user'
export const WORKSPACE = '/workspace'

/** An E2B path → the path our file API and processes take. */
export function guestPathOf(e2bPath: string): string {
  const p = e2bPath === '' || e2bPath === '~' ? E2B_HOME : e2bPath.startsWith('~/') ? `${E2B_HOME}/${e2bPath.slice(2)}` : e2bPath
  // Normalized first, so `/home/user/../../etc` is /etc (refused by the agent), never /workspace/…
  const abs = path.normalize(path.isAbsolute(p) ? p : path.join(E2B_HOME, p))
  if (abs === E2B_HOME || abs === `${E2B_HOME}/`) return WORKSPACE
  if (abs.startsWith(`${E2B_HOME}/`)) return `${WORKSPACE}/${abs.slice(E2B_HOME.length + 1)}`.replace(/\/$/, '')
  return abs.length > 1 ? abs.replace(/\/$/, '') : abs
}

/** A path our agent reports (/workspace/…) → the path an E2B client expects (/home/user/…). */
export function e2bPathOf(guestPath: string): string {
  if (guestPath === WORKSPACE) return E2B_HOME
  if (guestPath.startsWith(`${WORKSPACE}/`)) return `${E2B_HOME}/${guestPath.slice(WORKSPACE.length + 1)}`
  return guestPath
}
