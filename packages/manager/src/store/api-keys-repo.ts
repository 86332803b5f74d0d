// Persistence of minted API keys. The secret part of a key exists only in the response that
// minted it; the row holds its scrypt hash and the visible prefix the key is found by.
import type { Selectable } from 'kysely'
import type { Db } from './db.ts'
import type { ApiKeysTable } from './schema.ts'

export interface ApiKeyRecord {
  id: string
  name: string
  prefix: string
  createdAt: string
  createdBy: string | null
  expiresAt: string | null
  revokedAt: string | null
  lastUsedAt: string | null
}

const fromRow = (r: Selectable<ApiKeysTable>): ApiKeyRecord => ({
  id: r.id,
  name: r.name,
  prefix: r.prefix,
  createdAt: r.created_at,
  createdBy: r.created_by,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
  lastUsedAt: r.last_used_at,
})

export function createApiKeysRepo(db: Db) {
  return {
    async insert(k: ApiKeyRecord, hash: string): Promise<void> {
      await db
        .insertInto('api_keys')
        .values({ id: k.id, name: k.name, prefix: k.prefix, hash, created_at: k.createdAt, created_by: k.createdBy, expires_at: k.expiresAt, revoked_at: k.revokedAt, last_used_at: k.lastUsedAt })
        .execute()
    },

    async list(): Promise<ApiKeyRecord[]> {
      return (await db.selectFrom('api_keys').selectAll().orderBy('created_at', 'desc').orderBy('id').execute()).map(fromRow)
    },

    async get(id: string): Promise<ApiKeyRecord | undefined> {
      const r = await db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst()
      return r && fromRow(r)
    },

    /** The key with this prefix and its hash, for checking a presented key. */
    async byPrefix(prefix: string): Promise<{ key: ApiKeyRecord; hash: string } | undefined> {
      const r = await db.selectFrom('api_keys').selectAll().where('prefix', '=', prefix).executeTakeFirst()
      return r && { key: fromRow(r), hash: r.hash }
    },

    async revoke(id: string, at: string): Promise<void> {
      await db.updateTable('api_keys').set({ revoked_at: at }).where('id', '=', id).where('revoked_at', 'is', null).execute()
    },

    async markUsed(id: string, at: string): Promise<void> {
      await db.updateTable('api_keys').set({ last_used_at: at }).where('id', '=', id).execute()
    },
  }
}
export type ApiKeysRepo = ReturnType<typeof createApiKeysRepo>
