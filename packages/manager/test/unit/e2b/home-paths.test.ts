// E2B's home (/home/user, or relative paths) maps onto /workspace and back; everything else is
// passed on unchanged, normalized, for the agent to refuse exactly as it does for /v1.
import { describe, expect, it } from 'vitest'
import { e2bPathOf, guestPathOf } from '../../../src/api/e2b/home-paths.ts'

describe('E2B paths → ours', () => {
  const cases: Array<[string, string]> = [
    ['/home/user', '/workspace'],
    ['/home/user/', '/workspace'],
    ['', '/workspace'],
    ['~', '/workspace'],
    ['~/a/b.txt', '/workspace/a/b.txt'],
    ['/home/user/a.txt', '/workspace/a.txt'],
    ['a.txt', '/workspace/a.txt'],
    ['./dir/x', '/workspace/dir/x'],
    ['/workspace/a', '/workspace/a'],
    // Escapes come out as what they name, outside the workspace, for the agent to refuse.
    ['/home/user/../../etc/passwd', '/etc/passwd'],
    ['../../etc/shadow', '/etc/shadow'],
    ['/home/userx/a', '/home/userx/a'],
    ['/home/user/a/../../user2', '/home/user2'],
    ['/etc/passwd', '/etc/passwd'],
    ['/', '/'],
  ]
  for (const [given, want] of cases) it(`${JSON.stringify(given)} → ${want}`, () => expect(guestPathOf(given)).toBe(want))

  it('never maps a path that leaves the home into /workspace', () => {
    for (const p of ['/home/user/../x', '..', '../workspace/../etc', '/home/user/./../user/../../etc']) expect(guestPathOf(p).startsWith('/workspace')).toBe(false)
  })
})

describe('our paths → E2B', () => {
  it('reports /workspace as /home/user and leaves others', () => {
    expect(e2bPathOf('/workspace')).toBe('/home/user')
    expect(e2bPathOf('/workspace/a/b')).toBe('/home/user/a/b')
    expect(e2bPathOf('/workspacex')).toBe('/workspacex')
    expect(e2bPathOf('/tmp/a')).toBe('/tmp/a')
  })
})
