// Every call of the node goes through here: n8n adds the credential's key
// (httpRequestWithAuthentication), and an answer outside 2xx becomes a NodeApiError that carries
// the API's `code`, HTTP status and sentence, so a workflow (or an agent using the node as a tool)
// can branch on the code instead of parsing text.
import type { IDataObject, IExecuteFunctions, IHttpRequestMethods, IHttpRequestOptions } from 'n8n-workflow'
import { NodeApiError } from 'n8n-workflow'
import { errorBody } from './error-body.js'

export const CREDENTIAL_TYPE = 'runDatsheeshApi'

export interface ApiCall {
  method: IHttpRequestMethods
  /** Path under the base URL, starting with /v1/. */
  path: string
  qs?: IDataObject
  /** JSON body, or raw bytes sent as `contentType`. */
  body?: IDataObject | Buffer
  contentType?: string
  /** Answer as bytes (file reads, archives) instead of JSON. */
  binary?: boolean
  itemIndex: number
}

interface FullResponse {
  statusCode: number
  headers: Record<string, string | string[] | undefined>
  body: unknown
}

export async function apiRequest(ctx: IExecuteFunctions, call: ApiCall): Promise<FullResponse> {
  const credentials = await ctx.getCredentials<{ baseUrl: string }>(CREDENTIAL_TYPE, call.itemIndex)
  const raw = Buffer.isBuffer(call.body)
  const options: IHttpRequestOptions = {
    method: call.method,
    baseURL: String(credentials.baseUrl).replace(/\/+$/, ''),
    url: call.path,
    qs: call.qs,
    body: call.body,
    headers: raw ? { 'Content-Type': call.contentType ?? 'application/octet-stream' } : undefined,
    json: !raw && !call.binary,
    encoding: call.binary ? 'arraybuffer' : undefined,
    returnFullResponse: true,
    // The status is judged below, where the API's code can be kept.
    ignoreHttpStatusErrors: true,
  }
  const res = (await ctx.helpers.httpRequestWithAuthentication.call(ctx, CREDENTIAL_TYPE, options)) as FullResponse
  if (res.statusCode >= 200 && res.statusCode < 300) return res
  const body = errorBody(res.body)
  const error = new NodeApiError(ctx.getNode(), body, {
    message: body.message,
    description: `run-dat-sheesh error ${body.code} (HTTP ${res.statusCode}) on ${call.method} ${call.path}`,
    httpCode: String(res.statusCode),
    itemIndex: call.itemIndex,
  })
  error.context.code = body.code
  throw error
}

/** A JSON answer's body (204 answers have none). */
export async function apiJson<T = IDataObject>(ctx: IExecuteFunctions, call: ApiCall): Promise<T> {
  const res = await apiRequest(ctx, call)
  return res.body as T
}

/** The raw bytes of an answer asked for with `binary: true`. */
export function bodyBytes(res: FullResponse): Buffer {
  const b = res.body
  if (Buffer.isBuffer(b)) return b
  if (b instanceof ArrayBuffer) return Buffer.from(b)
  if (typeof b === 'string') return Buffer.from(b)
  return Buffer.alloc(0)
}
