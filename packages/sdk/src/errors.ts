/** An answer of the API that is not a success: its stable `code`, HTTP `status` and sentence. */
export class RdsApiError extends Error {
  readonly status: number
  readonly code: string
  /** Other fields of the error body (e.g. `retryAfterSeconds`, the limit that was hit). */
  readonly details: Record<string, unknown>
  /** The manager's id of the request (its X-Request-Id): the manager log lines of the call carry it as `reqId`. */
  readonly requestId: string | undefined
  constructor(status: number, code: string, message: string, details: Record<string, unknown> = {}) {
    super(message)
    this.name = 'RdsApiError'
    this.status = status
    this.code = code
    this.details = details
    this.requestId = typeof details.requestId === 'string' ? details.requestId : undefined
  }
}

/** The manager could not be reached, or did not answer in time. */
export class RdsConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'RdsConnectionError'
  }
}
