import { expect, it } from 'vitest'
import { planGlob } from '../src/sandbox/file-locate.ts'

it('plans a glob under /workspace: relative or absolute, the walk starting at its fixed prefix', () => {
  expect(planGlob('src/**/*.ts', '/workspace')).toEqual({ pattern: 'src/**/*.ts', prefix: 'src' })
  expect(planGlob('/workspace/a/./b/*.{js,ts}', '/workspace')).toEqual({ pattern: 'a/b/*.{js,ts}', prefix: 'a/b' })
  expect(planGlob('**/x', '/workspace')).toEqual({ pattern: '**/x', prefix: '' })
  expect(planGlob('exact/name.txt', '/workspace')).toEqual({ pattern: 'exact/name.txt', prefix: 'exact/name.txt' })
})

it('refuses patterns that leave the workspace or name nothing', () => {
  for (const p of ['../*', 'a/../../b', '/etc/*', '/workspacex/*']) expect(() => planGlob(p, '/workspace'), p).toThrow(/Only \/workspace|escapes/)
  for (const p of ['/workspace', '.', '/workspace/./']) expect(() => planGlob(p, '/workspace'), p).toThrow(/must name something/)
})
