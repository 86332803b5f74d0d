// API keys minted by an admin, working as X-API-Key beside the env API_KEY. A key is
// `rds_<12 hex>_<32 base64url>`, or `e2b_<40 hex>` for E2B's SDKs (the first 12 hex are then the
// prefix, the other 28 the secret): the prefix is visible (how the key is found and shown), the
// secret is stored only as an scrypt hash. scrypt is slow on purpose, so a
// verified secret is remembered (as its SHA-256) for the prefix; revocation and expiry are read
// from the database on every request, so they take effect at once.
import crypto from 'node:crypto'
import { promisify } from 'node:util'
import { Errors } from '../../errors.ts'
import type { ApiKeyRecord, ApiKeysRepo } from '../../store/api-keys-repo.ts'
import type { RecordActivity } from '../activity/activity-log.ts'
import type { Actor } from './actor.ts'

const scrypt = promisify(crypto.scrypt) as (password: string, salt: Buffer, keylen: number) => Promise<Buffer>
const KEY_SHAPES = [/^(rds_[0-9a-f]{12})_([A-Za-z0-9_-]{32})$/, /^(e2b_[0-9a-f]{12})([0-9a-f]{28})$/]
export type ApiKeyFormat = 'rds' | 'e2b'
/** How often lastUsedAt is written at most per key. */
const MARK_USED_EVERY_MS = 60_000

async function hashSecret(secret: string): Promise<string> {
  const salt = crypto.randomBytes(16)
  return `scrypt$${salt.toString('base64')}$${(await scrypt(secret, salt, 32)).toString('base64')}`
}

async function secretMatches(secret: string, stored: string): Promise<boolean> {
  const [scheme, salt, dk] = stored.split('$')
  if (scheme !== 'scrypt' || !salt || !dk) return false
  const expected = Buffer.from(dk, 'base64')
  const got = await scrypt(secret, Buffer.from(salt, 'base64'), expected.length)
  return crypto.timingSafeEqual(got, expected)
}

export function createApiKeys(deps: { repo: ApiKeysRepo; activity: RecordActivity }) {
  const { repo } = deps
  /** prefix -> SHA-256 of the secret that passed scrypt for it. */
  const verified = new Map<string, Buffer>()
  const markedAt = new Map<string, number>()

  return {
    async mint(input: { name: string; expiresAt?: string | null; format?: ApiKeyFormat }, createdBy: string): Promise<{ key: ApiKeyRecord; apiKey: string }> {
      const name = input.name.trim()
      if (!name) throw Errors.badRequest('name is required')
      let expiresAt: string | null = null
      if (input.expiresAt) {
        const t = Date.parse(input.expiresAt)
        if (Number.isNaN(t)) throw Errors.invalidExpiry(`expiresAt ${JSON.stringify(input.expiresAt)} is not a date-time`)
        if (t <= Date.now()) throw Errors.invalidExpiry('expiresAt must be in the future')
        expiresAt = new Date(t).toISOString()
      }
      const e2b = input.format === 'e2b'
      const prefix = `${e2b ? 'e2b' : 'rds'}_${crypto.randomBytes(6).toString('hex')}`
      // 28 hex (112 bits) in E2B's shape, 32 base64url (192 bits) in ours.
      const secret = e2b ? crypto.randomBytes(14).toString('hex') : crypto.randomBytes(24).toString('base64url')
      const key: ApiKeyRecord = { id: `key-${crypto.randomUUID()}`, name, prefix, createdAt: new Date().toISOString(), createdBy, expiresAt, revokedAt: null, lastUsedAt: null }
      await repo.insert(key, await hashSecret(secret))
      deps.activity({ type: 'apikey.created', entityType: 'apikey', entityId: key.id, message: `API key ${name} (${prefix}) created`, meta: { name, prefix, expiresAt } })
      return { key, apiKey: e2b ? `${prefix}${secret}` : `${prefix}_${secret}` }
    },

    list: () => repo.list(),

    async revoke(id: string): Promise<ApiKeyRecord> {
      const key = await repo.get(id)
      if (!key) throw Errors.apiKeyNotFound()
      if (!key.revokedAt) {
        await repo.revoke(id, new Date().toISOString())
        deps.activity({ type: 'apikey.revoked', entityType: 'apikey', entityId: id, message: `API key ${key.name} (${key.prefix}) revoked`, meta: { name: key.name, prefix: key.prefix } })
      }
      verified.delete(key.prefix)
      return (await repo.get(id))!
    },

    /** The actor of a presented key, or undefined when it is not a live key of ours. */
    async verify(presented: string): Promise<Actor | undefined> {
      const m = KEY_SHAPES.map((shape) => shape.exec(presented)).find(Boolean)
      if (!m) return undefined
      const [, prefix, secret] = m as unknown as [string, string, string]
      const found = await repo.byPrefix(prefix)
      if (!found) return undefined
      const { key, hash } = found
      if (key.revokedAt || (key.expiresAt && Date.parse(key.expiresAt) <= Date.now())) return undefined
      const digest = crypto.createHash('sha256').update(secret).digest()
      const known = verified.get(prefix)
      if (!(known && crypto.timingSafeEqual(known, digest))) {
        if (!(await secretMatches(secret, hash))) return undefined
        verified.set(prefix, digest)
      }
      const now = Date.now()
      if (now - (markedAt.get(key.id) ?? 0) >= MARK_USED_EVERY_MS) {
        markedAt.set(key.id, now)
        await repo.markUsed(key.id, new Date(now).toISOString())
      }
      return { kind: 'api-key', keyId: key.id, name: key.name }
    },
  }
}
export type ApiKeys = ReturnType<typeof createApiKeys>
