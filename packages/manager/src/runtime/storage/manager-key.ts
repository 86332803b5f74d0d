// A random key of this manager, kept in STORAGE_ROOT/manager-key (0600) and made on first use:
// what the manager seals its own stored secrets with (webhook signing secrets), so that a copy
// of the database alone (a backup, a PostgreSQL elsewhere) does not hold them in clear.
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

export function managerKey(storageRoot: string): Buffer {
  const file = path.join(storageRoot, 'manager-key')
  try {
    const key = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64')
    if (key.length === 32) return key
    throw new Error(`${file} does not hold a 32-byte base64 key; restore it from a backup (sealed secrets need it)`)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const key = crypto.randomBytes(32)
  fs.writeFileSync(file, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' })
  return key
}
