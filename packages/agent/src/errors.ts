import type { AgentErrorCode } from '@rds/protocol'

const STATUS: Record<AgentErrorCode, number> = {
  invalid_request: 400,
  path_not_allowed: 400,
  path_not_found: 404,
  archive_invalid: 400,
  archive_too_large: 413,
  not_a_directory: 409,
  is_a_directory: 409,
  directory_not_empty: 409,
  already_exists: 409,
  permission_denied: 403,
  range_not_satisfiable: 416,
  too_many_entries: 400,
  no_space: 507,
  busy: 503,
  network_failed: 500,
  process_not_found: 404,
  process_limit: 429,
  process_state: 409,
  internal: 500,
}

/** An error whose code and message are meant for the caller; anything else becomes `internal`. */
export class AgentFailure extends Error {
  readonly code: AgentErrorCode
  readonly status: number
  constructor(code: AgentErrorCode, message: string, status?: number) {
    super(message)
    this.code = code
    this.status = status ?? STATUS[code]
  }
}
