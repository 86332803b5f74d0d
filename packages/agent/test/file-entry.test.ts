import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { FileEntry, matches } from '@rds/protocol'
import { afterAll, expect, it } from 'vitest'
import { entryOf } from '../src/worker/file-entry.ts'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-entry-'))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

it('shapes files, directories, links and others as the protocol\'s FileEntry', () => {
  fs.writeFileSync(path.join(dir, 'f'), 'abc', { mode: 0o640 })
  fs.chmodSync(path.join(dir, 'f'), 0o640)
  fs.mkdirSync(path.join(dir, 'd'))
  fs.chmodSync(path.join(dir, 'd'), 0o1777)
  fs.symlinkSync('/etc/shadow', path.join(dir, 'l'))
  const at = (n: string) => entryOf(fs.lstatSync(path.join(dir, n)), n, `/workspace/${n}`)
  expect(at('f')).toMatchObject({ name: 'f', path: '/workspace/f', type: 'file', size: 3, mode: '640' })
  expect(at('d')).toMatchObject({ type: 'dir', mode: '1777' })
  // A link is described as the link: its size is its target's text, never the target's size.
  expect(at('l')).toMatchObject({ type: 'symlink', size: '/etc/shadow'.length })
  expect(entryOf(fs.lstatSync('/dev/null'), 'null', '/workspace/null').type).toBe('other')
  for (const n of ['f', 'd', 'l']) expect(matches(FileEntry, at(n))).toBe(true)
  expect(Date.parse(at('f').mtime)).toBe(fs.lstatSync(path.join(dir, 'f')).mtime.getTime())
})
