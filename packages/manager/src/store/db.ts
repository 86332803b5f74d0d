// Opens the database (embedded SQLite by default, PostgreSQL when DATABASE_URL is set) and
// brings its schema up to date before anything else touches it.
import fs from 'node:fs'
import path from 'node:path'
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely'
import { Migrator } from 'kysely/migration'
import type { Database } from './schema.ts'
import { migrationProvider, type SqlDialect } from './migrations.ts'
import { openSqlite } from './sqlite-node.ts'

export type Db = Kysely<Database>

export async function openDatabase(opts: { databaseUrl?: string; sqlitePath: string }): Promise<{ db: Db; dialect: SqlDialect }> {
  let db: Db
  let dialect: SqlDialect
  if (opts.databaseUrl) {
    const { default: pg } = await import('pg')
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: opts.databaseUrl, max: 10 }) }) })
    dialect = 'postgres'
  } else {
    fs.mkdirSync(path.dirname(opts.sqlitePath), { recursive: true, mode: 0o700 })
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: openSqlite(opts.sqlitePath) }) })
    // The manager's alone whatever the directory's mode (an operator may have made STORAGE_ROOT
    // 0755): it holds sealed secrets and every VM's policy, and VMMs run as other users.
    fs.chmodSync(opts.sqlitePath, 0o600)
    dialect = 'sqlite'
  }
  const { error, results } = await new Migrator({ db, provider: migrationProvider(dialect) }).migrateToLatest()
  const failed = results?.find((r) => r.status === 'Error')
  if (error || failed) {
    await db.destroy()
    throw new Error(`database migration failed${failed ? ` at ${failed.migrationName}` : ''}: ${String(error)}`)
  }
  return { db, dialect }
}

/** One round trip to the database (GET /ready): resolves when it answers. */
export async function pingDatabase(db: Db): Promise<void> {
  await sql`select 1`.execute(db)
}
