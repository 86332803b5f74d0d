// Start-up checks without starting a manager: API_KEY length, the new limits, and the guest RAM
// directory (who made it). The manager process refusing to start is tested in security/hardening.test.ts.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config.ts'
import { ensureRamDir, ramDirProblem } from '../../src/runtime/storage/ram-dir.ts'

describe('configuration', () => {
  it('refuses an API_KEY shorter than 16 characters without repeating it', () => {
    let err: unknown
    try {
      loadConfig({ API_KEY: 'fifteen-chars-x' })
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as Error).message).toMatch(/API_KEY must be at least 16 characters/)
    expect((err as Error).message).not.toContain('fifteen-chars-x')
    expect(loadConfig({ API_KEY: 'sixteen-chars-xx' }).apiKey).toBe('sixteen-chars-xx')
    expect(loadConfig({ API_KEY: '' }).apiKey).toBeUndefined()
  })

  it('reads EXEC_LOG_MAX_ENTRIES and MAX_SNAPSHOTS', () => {
    expect(loadConfig({})).toMatchObject({ execLogMaxEntries: 1000, maxSnapshots: 100 })
    expect(loadConfig({ EXEC_LOG_MAX_ENTRIES: '5', MAX_SNAPSHOTS: '2' })).toMatchObject({ execLogMaxEntries: 5, maxSnapshots: 2 })
    expect(() => loadConfig({ EXEC_LOG_MAX_ENTRIES: '0' })).toThrow(ConfigError)
  })
})

describe('guest RAM directory', () => {
  const dirs: string[] = []
  const scratch = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-ramdir-'))
    dirs.push(d)
    return d
  }
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
  })

  it('creates it 0700 when absent, and accepts its own', () => {
    const dir = path.join(scratch(), 'a', 'ram')
    expect(ramDirProblem(dir)).toBeUndefined()
    expect(ensureRamDir(dir)).toBeUndefined()
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700)
    expect(ensureRamDir(dir)).toBeUndefined()
  })

  it('refuses one owned by another uid, with another mode, a symlink or a file', () => {
    const base = scratch()
    const other = path.join(base, 'other')
    fs.mkdirSync(other, { mode: 0o700 })
    fs.chownSync(other, 1000, 1000)
    expect(ensureRamDir(other)).toMatch(/owned by uid 1000/)
    const open = path.join(base, 'open')
    fs.mkdirSync(open)
    fs.chmodSync(open, 0o755)
    expect(ensureRamDir(open)).toMatch(/mode 0755, not 0700/)
    const target = path.join(base, 'target')
    fs.mkdirSync(target, { mode: 0o700 })
    const link = path.join(base, 'link')
    fs.symlinkSync(target, link)
    expect(ensureRamDir(link)).toMatch(/is a symbolic link/)
    expect(fs.readdirSync(target)).toEqual([])
    fs.writeFileSync(path.join(base, 'file'), '')
    expect(ensureRamDir(path.join(base, 'file'))).toMatch(/not a directory/)
  })
})
