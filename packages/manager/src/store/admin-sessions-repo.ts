// Persistence of admin sessions, keyed by the SHA-256 of the session id (the cookie's value), so
// that the table alone never lets anyone in.
import type { Db } from './db.ts'

export interface AdminSessionRecord {
  idHash: string
  email: string
  createdAt: string
  lastSeenAt: string
  expiresAt: string
}

export function createAdminSessionsRepo(db: Db) {
  return {
    async insert(s: AdminSessionRecord): Promise<void> {
      await db.insertInto('admin_sessions').values({ id_hash: s.idHash, email: s.email, created_at: s.createdAt, last_seen_at: s.lastSeenAt, expires_at: s.expiresAt }).execute()
    },

    async get(idHash: string): Promise<AdminSessionRecord | undefined> {
      const r = await db.selectFrom('admin_sessions').selectAll().where('id_hash', '=', idHash).executeTakeFirst()
      return r && { idHash: r.id_hash, email: r.email, createdAt: r.created_at, lastSeenAt: r.last_seen_at, expiresAt: r.expires_at }
    },

    async touch(idHash: string, at: string): Promise<void> {
      await db.updateTable('admin_sessions').set({ last_seen_at: at }).where('id_hash', '=', idHash).execute()
    },

    async remove(idHash: string): Promise<void> {
      await db.deleteFrom('admin_sessions').where('id_hash', '=', idHash).execute()
    },

    /** Sessions past their absolute end or idle since before `idleBefore`. */
    async removeExpired(now: string, idleBefore: string): Promise<number> {
      const r = await db.deleteFrom('admin_sessions').where((eb) => eb.or([eb('expires_at', '<=', now), eb('last_seen_at', '<', idleBefore)])).executeTakeFirst()
      return Number(r.numDeletedRows)
    },
  }
}
export type AdminSessionsRepo = ReturnType<typeof createAdminSessionsRepo>
