// A private PostgreSQL server for tests: its own data directory, listening only on a Unix
// socket in that directory (no TCP port at all), run as the `postgres` system user.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const BIN = '/usr/lib/postgresql/15/bin'

export interface TestPostgres {
  url: string
  stop(): void
}

export function startPostgres(): TestPostgres {
  if (!fs.existsSync(path.join(BIN, 'initdb'))) throw new Error(`PostgreSQL 15 is not installed (${BIN}); \`npm test\` installs it via scripts/bootstrap.sh --test`)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-pg-'))
  fs.chmodSync(dir, 0o755)
  const data = path.join(dir, 'data')
  const asPg = (cmd: string, args: string[]) => execFileSync('runuser', ['-u', 'postgres', '--', path.join(BIN, cmd), ...args], { stdio: 'pipe' })
  fs.mkdirSync(data)
  execFileSync('chown', ['-R', 'postgres:postgres', dir])
  asPg('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync'])
  asPg('pg_ctl', ['-D', data, '-w', '-l', path.join(dir, 'log'), '-o', `-k ${dir} -c listen_addresses='' -c fsync=off`, 'start'])
  return {
    url: `postgresql://postgres@/postgres?host=${encodeURIComponent(dir)}`,
    stop() {
      try {
        asPg('pg_ctl', ['-D', data, '-w', '-m', 'immediate', 'stop'])
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    },
  }
}
