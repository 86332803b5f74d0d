// Who may use a sandbox's E2B ports that the manager answers itself (envd, the code
// interpreter): the sandbox's token, or one of our API keys. The SDKs carry the token in
// X-Access-Token (envd, runCode) or E2B-Traffic-Access-Token (the code interpreter's context
// calls, which send nothing else); both hold the same per-sandbox token (access-token.ts).
import type { FastifyRequest } from 'fastify'
import { authenticate, type Authenticators } from '../auth.ts'
import { Errors } from '../../errors.ts'
import { envdAccessTokenMatches } from './access-token.ts'
import { SANDBOX_ID_HEADER } from './sandbox-header.ts'

const TOKEN_HEADERS = ['x-access-token', 'e2b-traffic-access-token']

const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v)

export const sandboxIdOfRequest = (req: FastifyRequest): string => {
  const id = one(req.headers[SANDBOX_ID_HEADER])
  if (!id) throw Errors.e2bAccessTokenInvalid()
  return id
}

export async function authorizeSandbox(req: FastifyRequest, auth: Authenticators): Promise<void> {
  const id = sandboxIdOfRequest(req)
  if (TOKEN_HEADERS.some((h) => envdAccessTokenMatches(auth.envKey, id, one(req.headers[h])))) return
  if (one(req.headers['x-api-key']) !== undefined) {
    await authenticate(req, auth)
    return
  }
  throw Errors.e2bAccessTokenInvalid()
}
