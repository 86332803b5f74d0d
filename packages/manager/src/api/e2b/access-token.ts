// envd requests carry no API key, only the sandbox's envdAccessToken (X-Access-Token). The token
// is derived from the manager's API key and the sandbox id, so nothing secret is stored and it
// outlives a manager restart; it opens that one sandbox's envd and nothing else.
import crypto from 'node:crypto'
import { keyMatches } from '../auth.ts'

export function envdAccessTokenFor(managerKey: string, sandboxId: string): string {
  return crypto.createHmac('sha256', managerKey).update(`e2b-envd-access:${sandboxId}`).digest('base64url')
}

export function envdAccessTokenMatches(managerKey: string, sandboxId: string, given: string | undefined): boolean {
  return keyMatches(given, envdAccessTokenFor(managerKey, sandboxId))
}
