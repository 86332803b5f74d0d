// Builds test archives with the host's GNU tar.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export function tarGz(files: Record<string, string>): Buffer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-tar-'))
  try {
    for (const [name, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
      fs.writeFileSync(path.join(dir, name), content)
    }
    return execFileSync('tar', ['-czf', '-', '-C', dir, '.'])
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}
