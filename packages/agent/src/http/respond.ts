import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2'
import { mismatch } from '@rds/protocol'
import type { TSchema } from 'typebox'
import { MAX_JSON_BODY_BYTES } from '../config.ts'
import { AgentFailure } from '../errors.ts'

export function sendJson(res: Http2ServerResponse, status: number, body: unknown): void {
  const data = Buffer.from(JSON.stringify(body))
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length })
  res.end(data)
}

export function sendError(res: Http2ServerResponse, err: unknown): void {
  const f = err instanceof AgentFailure ? err : new AgentFailure('internal', (err as Error)?.message ?? String(err))
  if (res.headersSent) {
    // Mid-stream failure: the only honest signal left is an aborted stream.
    res.stream.close(2 /* NGHTTP2_INTERNAL_ERROR */)
    return
  }
  sendJson(res, f.status, { code: f.code, message: f.message })
}

export async function readJson(req: Http2ServerRequest): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length
    if (size > MAX_JSON_BODY_BYTES) throw new AgentFailure('invalid_request', `request body over ${MAX_JSON_BODY_BYTES} bytes`, 413)
    chunks.push(c)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new AgentFailure('invalid_request', 'request body is not valid JSON')
  }
}

/** `value` as the schema's type, or invalid_request naming the first offending field. */
export function checkRequest<T>(schema: TSchema, value: unknown): T {
  const problem = mismatch(schema, value)
  if (problem !== undefined) throw new AgentFailure('invalid_request', problem)
  return value as T
}
