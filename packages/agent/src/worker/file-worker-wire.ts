// What the agent and its file worker (file-worker.ts) say to each other over the worker's stdio:
// one JSON document per line each way, replies matched to requests by id. Paths in requests are
// already confined by the agent; `as` is the public name an answer states.
import type { AgentErrorCode, FileEntry } from '@rds/protocol'

export type WireEntry = FileEntry

export type WorkerOp =
  | { op: 'stat'; path: string; as: string; follow?: boolean; readable?: boolean }
  | { op: 'list'; path: string; as: string; depth: number; max: number }
  | { op: 'glob'; start: string; as: string; pattern: string; prefix: string; max: number }
  | { op: 'delete'; path: string; recursive: boolean }
  | { op: 'move'; from: string; to: string }
  | { op: 'mkdir'; path: string }
  | { op: 'mkdirParent'; path: string }
  | { op: 'chmod'; path: string; mode: number }
  | { op: 'commit'; tmp: string; path: string; mode?: number }
  | { op: 'unlink'; path: string }

export type WorkerRequest = WorkerOp & { id: number }

export interface WorkerFailure {
  code: AgentErrorCode
  message: string
}

export type WorkerReply = { id: number; value: unknown; error?: undefined } | { id: number; error: WorkerFailure; value?: undefined }

/** errno of a failed filesystem call → the file API's code. */
const BY_ERRNO: Record<string, AgentErrorCode> = {
  ENOENT: 'path_not_found',
  ENOTDIR: 'not_a_directory',
  EISDIR: 'is_a_directory',
  ENOTEMPTY: 'directory_not_empty',
  EEXIST: 'already_exists',
  EACCES: 'permission_denied',
  EPERM: 'permission_denied',
  EROFS: 'permission_denied',
  ELOOP: 'path_not_allowed',
  ENOSPC: 'no_space',
  EDQUOT: 'no_space',
  ENAMETOOLONG: 'invalid_request',
  EINVAL: 'invalid_request',
  EXDEV: 'invalid_request',
}

const SENTENCE: Partial<Record<AgentErrorCode, string>> = {
  path_not_found: 'no such file or directory',
  not_a_directory: 'a component of the path is not a directory',
  is_a_directory: 'is a directory',
  directory_not_empty: 'directory not empty (set recursive=true to delete it with its contents)',
  already_exists: 'already exists and is not a directory',
  permission_denied: 'permission denied (file operations run as the sandbox user, uid 1000)',
  no_space: 'no space left on the VM\'s disk',
}

export function failureOf(e: unknown): WorkerFailure {
  const errno = (e as NodeJS.ErrnoException)?.code
  const code = (errno && BY_ERRNO[errno]) || 'internal'
  return { code, message: SENTENCE[code] ?? (e as Error)?.message ?? String(e) }
}
