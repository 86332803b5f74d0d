// The real `e2b` SDK (pinned, from npm) against our manager, switched over the way docs/e2b.md
// tells users: E2B_API_URL and E2B_SANDBOX_URL pointed at the manager, one of our keys as
// E2B_API_KEY. One sandbox (a real VM, resumed from the image seed) serves every test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CommandExitError, Sandbox } from 'e2b'
import type { ManagerClient } from '../harness/manager-process.ts'
import { sharedManager } from '../harness/shared-manager.ts'

let mgr: ManagerClient
let sbx: Sandbox | undefined

beforeAll(async () => {
  mgr = await sharedManager()
  process.env.E2B_API_URL = mgr.baseUrl
  process.env.E2B_SANDBOX_URL = mgr.baseUrl
  process.env.E2B_API_KEY = mgr.apiKey
  const t0 = performance.now()
  sbx = await Sandbox.create({ metadata: { suite: 'e2b', run: String(process.pid) }, timeoutMs: 300_000 })
  const t1 = performance.now()
  await sbx.commands.run('true')
  console.log(`e2b SDK: Sandbox.create ${Math.round(t1 - t0)} ms, then a first commands.run ${Math.round(performance.now() - t1)} ms (TCG; a number, not a check)`)
}, 600_000)

afterAll(async () => {
  if (sbx) await Sandbox.kill(sbx.sandboxId).catch(() => undefined)
})

const sandbox = () => sbx!

describe('commands', () => {
  it('runs through a login bash in the home directory: stdout, stderr and the exit code', async () => {
    const r = await sandbox().commands.run('echo out; echo err >&2; pwd; shopt -q login_shell && echo login')
    expect(r.exitCode).toBe(0)
    expect(r.stdout).toBe('out\n/workspace\nlogin\n')
    expect(r.stderr).toBe('err\n')
  })

  it('a failing command throws CommandExitError with its exit code and output', async () => {
    const err = await sandbox().commands.run('echo nope >&2; exit 3').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(CommandExitError)
    expect((err as CommandExitError).exitCode).toBe(3)
    expect((err as CommandExitError).stderr).toBe('nope\n')
  })

  it('streams stdout to onStdout as it comes, and passes envs', async () => {
    const seen: string[] = []
    const r = await sandbox().commands.run('for i in 1 2 3; do echo "$GREETING $i"; sleep 0.2; done', { envs: { GREETING: 'hi' }, onStdout: (d) => void seen.push(d) })
    expect(seen.join('')).toBe('hi 1\nhi 2\nhi 3\n')
    expect(seen.length).toBeGreaterThan(1)
    expect(r.stdout).toBe('hi 1\nhi 2\nhi 3\n')
  })

  it('a background command reads stdin, shows in list, and dies when killed', async () => {
    const h = await sandbox().commands.run('read line; echo "got $line"; sleep 600', { background: true, stdin: true })
    await sandbox().commands.sendStdin(h.pid, 'hello\n')
    await expect.poll(() => h.stdout, { timeout: 60_000 }).toBe('got hello\n')
    expect((await sandbox().commands.list()).map((p) => p.pid)).toContain(h.pid)
    expect(await h.kill()).toBe(true)
    const end = await h.wait().catch((e: unknown) => e)
    expect(end).toBeInstanceOf(CommandExitError)
    expect((await sandbox().commands.list()).map((p) => p.pid)).not.toContain(h.pid)
  })

  it('a client that disconnects leaves its command running; connect follows it from then on', async () => {
    const h = await sandbox().commands.run('echo first; read go; echo second; sleep 600', { background: true, stdin: true, timeoutMs: 0 })
    await expect.poll(() => h.stdout, { timeout: 60_000 }).toBe('first\n')
    await h.disconnect()
    expect((await sandbox().commands.list()).map((p) => p.pid)).toContain(h.pid)
    const seen: string[] = []
    const again = await sandbox().commands.connect(h.pid, { onStdout: (d) => void seen.push(d), timeoutMs: 0 })
    await sandbox().commands.sendStdin(h.pid, 'go\n')
    await expect.poll(() => seen.join(''), { timeout: 60_000 }).toBe('second\n')
    expect(await sandbox().commands.kill(h.pid)).toBe(true)
    await expect(again.wait()).rejects.toBeInstanceOf(CommandExitError)
  })

  it('a command past its timeoutMs is ended (Connect-Timeout-Ms), not left running', async () => {
    await expect(sandbox().commands.run('sleep 300; echo never', { timeoutMs: 3_000 })).rejects.toThrow()
    await expect.poll(async () => (await sandbox().commands.list()).filter((p) => p.args.join(' ').includes('sleep 300')).length, { timeout: 60_000 }).toBe(0)
  })
})

describe('files', () => {
  it('writes, reads, lists, tells existence, makes directories, renames and removes, under /home/user', async () => {
    const f = sandbox().files
    const info = await f.write('/home/user/e2b/a.txt', 'alpha')
    expect(info.path).toBe('/home/user/e2b/a.txt')
    expect(await f.read('e2b/a.txt')).toBe('alpha')
    // The same file as our own API and the guest's commands see it.
    expect((await sandbox().commands.run('cat /workspace/e2b/a.txt')).stdout).toBe('alpha')
    expect(await f.makeDir('/home/user/e2b/sub')).toBe(true)
    expect(await f.makeDir('/home/user/e2b/sub')).toBe(false)
    const names = (await f.list('/home/user/e2b')).map((e) => `${e.name}:${e.type}`).sort()
    expect(names).toEqual(['a.txt:file', 'sub:dir'])
    expect(await f.exists('/home/user/e2b/a.txt')).toBe(true)
    const moved = await f.rename('/home/user/e2b/a.txt', '/home/user/e2b/sub/b.txt')
    expect(moved.path).toBe('/home/user/e2b/sub/b.txt')
    expect(await f.exists('/home/user/e2b/a.txt')).toBe(false)
    await f.remove('/home/user/e2b')
    expect(await f.exists('/home/user/e2b')).toBe(false)
  })

  it('watches a directory: a file written there is an event', async () => {
    const f = sandbox().files
    await f.makeDir('/home/user/watched')
    const seen: string[] = []
    const w = await f.watchDir('/home/user/watched', (e) => void seen.push(`${e.type}:${e.name}`))
    try {
      await f.write('/home/user/watched/new.txt', 'x')
      await expect.poll(() => seen.some((e) => e.endsWith(':new.txt')), { timeout: 60_000 }).toBe(true)
    } finally {
      await w.stop()
    }
  })

  it('keeps the file API\'s confinement: nothing outside the home directory', async () => {
    await expect(sandbox().files.read('/etc/passwd')).rejects.toThrow()
    await expect(sandbox().files.write('/home/user/../../etc/e2b', 'x')).rejects.toThrow()
  })
})

describe('control plane', () => {
  it('getInfo and list report the sandbox with its metadata', async () => {
    const info = await sandbox().getInfo()
    expect(info).toMatchObject({ sandboxId: sandbox().sandboxId, templateId: 'base', state: 'running', metadata: { suite: 'e2b' } })
    expect(info.endAt.getTime()).toBeGreaterThan(info.startedAt.getTime())
    const listed = await Sandbox.list({ query: { metadata: { suite: 'e2b', run: String(process.pid) } } }).nextItems()
    expect(listed.map((s) => s.sandboxId)).toEqual([sandbox().sandboxId])
    const none = await Sandbox.list({ query: { metadata: { suite: 'not-this' } } }).nextItems()
    expect(none.map((s) => s.sandboxId)).not.toContain(sandbox().sandboxId)
  })

  it('the sandbox is our VM: its timeout is the VM\'s TTL, its metadata the VM\'s labels', async () => {
    const vm = (await mgr.request('GET', `/v1/vms/${sandbox().sandboxId}`)).body
    expect(vm).toMatchObject({ ttlSeconds: 300, onExpire: 'delete', labels: { suite: 'e2b', run: String(process.pid) } })
    expect(Date.parse(vm.expiresAt)).toBe((await sandbox().getInfo()).endAt.getTime())
    const byLabel = (await mgr.request('GET', `/v1/vms?label=run=${process.pid}`)).body
    expect(byLabel.map((v: { id: string }) => v.id)).toEqual([sandbox().sandboxId])
  })

  it('setTimeout moves the end, which is the VM\'s deadline', async () => {
    const before = (await sandbox().getInfo()).endAt
    await sandbox().setTimeout(3_600_000)
    const after = (await sandbox().getInfo()).endAt
    expect(after.getTime()).toBeGreaterThan(before.getTime())
    expect(Date.parse((await mgr.request('GET', `/v1/vms/${sandbox().sandboxId}`)).body.expiresAt)).toBe(after.getTime())
  })

  it('a sandbox past its timeout is gone (deleted by the expiry reaper), as on E2B', async () => {
    const short = await Sandbox.create({ timeoutMs: 5_000, metadata: { suite: 'e2b-short' } })
    await expect.poll(async () => (await mgr.request('GET', `/v1/vms/${short.sandboxId}`)).status, { timeout: 120_000, interval: 1_000 }).toBe(404)
    expect(await Sandbox.kill(short.sandboxId)).toBe(false)
  })

  it('connect to a running sandbox gives a working handle', async () => {
    const again = await Sandbox.connect(sandbox().sandboxId)
    expect((await again.commands.run('echo again')).stdout).toBe('again\n')
  })

  it('pause, then connect resumes the sandbox where it was', async () => {
    await sandbox().files.write('kept.txt', 'still here')
    expect(await sandbox().pause()).toBe(true)
    expect(await Sandbox.pause(sandbox().sandboxId)).toBe(false)
    expect((await sandbox().getInfo()).state).toBe('paused')
    const paused = await Sandbox.list({ query: { state: ['paused'], metadata: { run: String(process.pid) } } }).nextItems()
    expect(paused.map((s) => s.sandboxId)).toEqual([sandbox().sandboxId])
    const back = await Sandbox.connect(sandbox().sandboxId)
    expect((await back.getInfo()).state).toBe('running')
    expect(await back.files.read('kept.txt')).toBe('still here')
  })

  it('kill removes the sandbox; a second kill says it was not there', async () => {
    const id = sandbox().sandboxId
    expect(await Sandbox.kill(id)).toBe(true)
    sbx = undefined
    expect(await Sandbox.kill(id)).toBe(false)
  })
})
