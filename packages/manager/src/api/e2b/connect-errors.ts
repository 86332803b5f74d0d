// Our errors as Connect errors, for the envd services: the SDKs choose their exception by the
// Connect code (not_found → NotFoundError, already_exists → makeDir answers false …).
import { Code, ConnectError } from '@connectrpc/connect'
import { ApiError, knownApiError } from '../../errors.ts'

/** Agent refusals keep their own code in the message; these few change what an SDK does. */
const CODE_OF: Record<string, Code> = {
  already_exists: Code.AlreadyExists,
  path_not_found: Code.NotFound,
  process_not_found: Code.NotFound,
  vm_not_found: Code.NotFound,
  path_not_allowed: Code.PermissionDenied,
  permission_denied: Code.PermissionDenied,
  not_a_directory: Code.InvalidArgument,
  is_a_directory: Code.InvalidArgument,
  directory_not_empty: Code.FailedPrecondition,
  no_space: Code.ResourceExhausted,
  too_many_entries: Code.ResourceExhausted,
}

function codeOfStatus(status: number): Code {
  if (status === 400) return Code.InvalidArgument
  if (status === 401) return Code.Unauthenticated
  if (status === 403) return Code.PermissionDenied
  if (status === 404) return Code.NotFound
  if (status === 409) return Code.FailedPrecondition
  if (status === 429) return Code.ResourceExhausted
  if (status === 503 || status === 502) return Code.Unavailable
  return Code.Internal
}

export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err
  const known = knownApiError(err) ?? err
  if (known instanceof ApiError) return new ConnectError(`${known.code}: ${known.message}`, CODE_OF[known.code] ?? codeOfStatus(known.status))
  return new ConnectError('internal error', Code.Internal)
}

/** Runs `fn`, turning what it throws into a Connect error. */
export async function connectCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw toConnectError(err)
  }
}
