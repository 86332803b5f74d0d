import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AgentFailure } from '../src/errors.ts'
import { realRoots, resolveConfined, resolveExisting, workspaceRelative, type PathRoots } from '../src/sandbox/paths.ts'

let dir: string
let policy: PathRoots
let ws: string

beforeAll(async () => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'rds-paths-')))
  const home = path.join(dir, 'home')
  ws = path.join(dir, 'workspace')
  const tmp = path.join(dir, 'tmp')
  const outside = path.join(dir, 'outside')
  for (const d of [home, tmp, outside]) fs.mkdirSync(d)
  // The guest bind-mounts /home/user on /workspace; a symlink is the closest stand-in here.
  fs.symlinkSync(home, ws)
  fs.mkdirSync(path.join(home, 'sub'))
  fs.writeFileSync(path.join(home, 'sub', 'f.txt'), 'x')
  fs.writeFileSync(path.join(outside, 'secret'), 's')
  fs.symlinkSync(outside, path.join(home, 'escape'))
  fs.symlinkSync(path.join(outside, 'not-yet'), path.join(home, 'dangling'))
  fs.symlinkSync(path.join(home, 'sub'), path.join(home, 'inner-link'))
  policy = { base: ws, roots: await realRoots([ws, home]) }
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'ok'
  } catch (e) {
    expect(e).toBeInstanceOf(AgentFailure)
    return (e as AgentFailure).code
  }
}

describe('path confinement', () => {
  it('accepts relative paths against the workspace', async () => {
    expect(await resolveExisting('sub/f.txt', policy)).toBe(path.join(dir, 'home', 'sub', 'f.txt'))
    expect(await resolveExisting('.', policy)).toBe(path.join(dir, 'home'))
  })

  it('accepts absolute paths under the workspace name only, not its second name (home alias)', async () => {
    expect(await resolveExisting(path.join(ws, 'sub'), policy)).toBe(path.join(dir, 'home', 'sub'))
    expect(await resolveExisting(ws, policy)).toBe(path.join(dir, 'home'))
    // Same directory, but the original's contract names /workspace only; checked before existence.
    expect(await code(resolveExisting(path.join(dir, 'home', 'sub'), policy))).toBe('path_not_allowed')
    expect(await code(resolveExisting(path.join(dir, 'home', 'missing'), policy))).toBe('path_not_allowed')
  })

  it('follows symlinks that stay inside', async () => {
    expect(await resolveExisting('inner-link/f.txt', policy)).toBe(path.join(dir, 'home', 'sub', 'f.txt'))
  })

  it('refuses a symlink pointing out of the workspace', async () => {
    expect(await code(resolveExisting('escape/secret', policy))).toBe('path_not_allowed')
    expect(await code(resolveExisting('escape', policy))).toBe('path_not_allowed')
  })

  it('refuses a dangling symlink that points outside, even for paths still to be created', async () => {
    expect(await code(resolveConfined('dangling/new-dir', policy))).toBe('path_not_allowed')
  })

  it('refuses .. escapes and absolute outside paths', async () => {
    expect(await code(resolveExisting('../outside/secret', policy))).toBe('path_not_allowed')
    expect(await code(resolveExisting('sub/../../outside', policy))).toBe('path_not_allowed')
    expect(await code(resolveExisting('/etc/passwd', policy))).toBe('path_not_allowed')
    expect(await code(resolveExisting('/', policy))).toBe('path_not_allowed')
  })

  it('reports missing paths inside as not found, and outside as not allowed', async () => {
    expect(await code(resolveExisting('sub/missing', policy))).toBe('path_not_found')
    expect(await code(resolveExisting('/nonexistent-rds-path/x', policy))).toBe('path_not_allowed')
  })

  it('resolves a not-yet-existing destination through its existing prefix', async () => {
    const r = await resolveConfined('sub/new/deeper', policy)
    expect(r).toEqual({ path: path.join(dir, 'home', 'sub', 'new', 'deeper'), exists: false })
  })

  it('rejects empty and NUL paths', async () => {
    expect(await code(resolveExisting('  ', policy))).toBe('invalid_request')
    expect(await code(resolveExisting('a\0b', policy))).toBe('invalid_request')
  })

  it('refuses /tmp-like roots outside the workspace', async () => {
    expect(await code(resolveConfined(path.join(dir, 'tmp', 'x'), policy))).toBe('path_not_allowed')
  })
})

describe('the lexical /workspace rule', () => {
  const rel = (p: string) => workspaceRelative(p, '/workspace')
  const message = (p: string) => {
    try {
      rel(p)
      return 'ok'
    } catch (e) {
      return (e as AgentFailure).message
    }
  }

  it('maps /workspace paths and relative paths to the same relative path', () => {
    expect(rel('/workspace')).toBe('')
    expect(rel('/workspace/')).toBe('')
    expect(rel(' /workspace/a/./b/ ')).toBe('a/b')
    expect(rel('a/b')).toBe('a/b')
    expect(rel('.')).toBe('')
    expect(rel('a/../b')).toBe('b')
  })

  it('refuses other absolute paths with the original sentence, and escapes with the other', () => {
    expect(message('/home/user/x')).toMatch(/^Only \/workspace paths are allowed/)
    expect(message('/workspacex')).toMatch(/^Only \/workspace paths are allowed/)
    expect(message('/tmp')).toMatch(/^Only \/workspace paths are allowed/)
    expect(message('/workspace/../etc')).toMatch(/^Path escapes \/workspace/)
    expect(message('../x')).toMatch(/^Path escapes \/workspace/)
    expect(message('a/../../x')).toMatch(/^Path escapes \/workspace/)
  })
})
