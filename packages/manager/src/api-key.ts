// The API key: API_KEY when set; otherwise a strong random key generated once, kept in
// STORAGE_ROOT/api-key (0600) and printed only when it is generated. Never a default.
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

export function resolveApiKey(fromEnv: string | undefined, file: string): { key: string; source: 'env' | 'file' | 'generated' } {
  if (fromEnv) return { key: fromEnv, source: 'env' }
  try {
    const key = fs.readFileSync(file, 'utf8').trim()
    if (key) return { key, source: 'file' }
  } catch {
    // not there yet
  }
  const key = `rds_${crypto.randomBytes(32).toString('base64url')}`
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  fs.writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' })
  return { key, source: 'generated' }
}
