// The console's one way to the manager: same-origin requests with the session cookie, the
// session's CSRF token on every request that changes state, and the API's errors as values
// with their code and sentence (shown to the user as they are).
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  constructor(status: number, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}

let csrfToken = ''
export const setCsrfToken = (token: string) => void (csrfToken = token)

async function request<T>(method: string, path: string, body?: unknown, init: { raw?: boolean } = {}): Promise<T> {
  const headers: Record<string, string> = {}
  if (method !== 'GET') headers['x-csrf-token'] = csrfToken
  if (body !== undefined && !init.raw) headers['content-type'] = 'application/json'
  const res = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : init.raw ? (body as BodyInit) : JSON.stringify(body) })
  const text = await res.text()
  const data = text ? (() => { try { return JSON.parse(text) } catch { return text } })() : undefined
  if (!res.ok) {
    const e = (data ?? {}) as { code?: string; message?: string }
    if (res.status === 401 && !path.startsWith('/auth/')) location.assign('/login/')
    throw new ApiError(res.status, e.code ?? 'http_error', e.message ?? `${res.status} ${res.statusText}`)
  }
  return data as T
}

export const api = {
  get: <T>(path: string) => request<T>('GET', path),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, body),
  patch: <T>(path: string, body: unknown) => request<T>('PATCH', path, body),
  del: (path: string) => request<void>('DELETE', path),
  /** A raw body (a file, an archive) as it is. */
  upload: <T>(method: 'POST' | 'PUT', path: string, body: Blob) => request<T>(method, path, body, { raw: true }),
  /**
   * A raw upload with progress (fetch cannot report it): large image files take minutes.
   */
  uploadWithProgress(method: 'PUT' | 'POST', path: string, body: Blob, onProgress: (fraction: number) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest()
      xhr.open(method, path)
      xhr.setRequestHeader('x-csrf-token', csrfToken)
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total)
      xhr.onload = () => {
        if (xhr.status < 300) return resolve()
        let e: { code?: string; message?: string } = {}
        try {
          e = JSON.parse(xhr.responseText)
        } catch {}
        reject(new ApiError(xhr.status, e.code ?? 'http_error', e.message ?? `${xhr.status}`))
      }
      xhr.onerror = () => reject(new ApiError(0, 'network', 'The manager could not be reached'))
      xhr.send(body)
    })
  },
}

export interface Me {
  email: string
  csrfToken: string
  expiresAt: string
}

/** A VM as the API shows it: the SDK's type, which is checked against the API's schema. */
export type { VmInfo as Vm } from '@run-dat-sheesh/sdk/source'

export interface Activity {
  id: string
  createdAt: string
  type: string
  entityType: string
  entityId: string | null
  actor: string
  message: string
  meta: Record<string, unknown>
}
