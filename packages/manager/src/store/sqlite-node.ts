// Adapts Node's built-in `node:sqlite` to the small interface Kysely's SqliteDialect expects.
// Built-in SQLite means no native addon to compile on a host without internet access.
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import type { SqliteDatabase, SqliteStatement } from 'kysely'

type Param = null | number | bigint | string | Uint8Array

const toParams = (ps: ReadonlyArray<unknown>): Param[] =>
  ps.map((p) => (typeof p === 'boolean' ? (p ? 1 : 0) : p === undefined ? null : (p as Param)))

class Statement implements SqliteStatement {
  readonly reader: boolean
  private readonly stmt: StatementSync
  constructor(stmt: StatementSync) {
    this.stmt = stmt
    this.reader = stmt.columns().length > 0
  }
  all(ps: ReadonlyArray<unknown>): unknown[] {
    return this.stmt.all(...toParams(ps))
  }
  run(ps: ReadonlyArray<unknown>) {
    const r = this.stmt.run(...toParams(ps))
    return { changes: r.changes, lastInsertRowid: r.lastInsertRowid }
  }
  iterate(ps: ReadonlyArray<unknown>): IterableIterator<unknown> {
    return this.stmt.iterate(...toParams(ps)) as IterableIterator<unknown>
  }
}

export function openSqlite(file: string): SqliteDatabase {
  const db = new DatabaseSync(file)
  // WAL: readers never block the writer; busy_timeout covers a second manager process briefly.
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;')
  return { close: () => db.close(), prepare: (sql: string) => new Statement(db.prepare(sql)) }
}
