// The real `@e2b/code-interpreter` SDK (pinned, from npm) against our manager, switched over as
// docs/e2b.md tells: runCode and code contexts on port 49999, answered by the manager with a
// Python driver running in the VM as the sandbox user. One sandbox (a real VM, made from the
// SDK's default template `code-interpreter-v1`, which maps to our default image) serves every test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Sandbox, type OutputMessage } from '@e2b/code-interpreter'
import type { ManagerClient } from '../harness/manager-process.ts'
import { sharedManager } from '../harness/shared-manager.ts'

let mgr: ManagerClient
let sbx: Sandbox | undefined

beforeAll(async () => {
  mgr = await sharedManager()
  process.env.E2B_API_URL = mgr.baseUrl
  process.env.E2B_SANDBOX_URL = mgr.baseUrl
  process.env.E2B_API_KEY = mgr.apiKey
  sbx = await Sandbox.create({ metadata: { suite: 'e2b-interpreter' }, timeoutMs: 600_000, envs: { SANDBOX_WIDE: 'everywhere' } })
  const t0 = performance.now()
  await sbx.runCode('0')
  console.log(`code interpreter: first runCode (starts the default context) ${Math.round(performance.now() - t0)} ms (TCG; a number, not a check)`)
}, 600_000)

afterAll(async () => {
  if (sbx) await Sandbox.kill(sbx.sandboxId).catch(() => undefined)
})

const sandbox = () => sbx!

describe('runCode', () => {
  it('gives the value of the last expression as the main result, with the execution count', async () => {
    const e = await sandbox().runCode('1+1')
    expect(e.error).toBeUndefined()
    expect(e.text).toBe('2')
    expect(e.results).toHaveLength(1)
    expect(e.results[0]!.isMainResult).toBe(true)
    expect(e.executionCount).toBeGreaterThan(0)
    const next = await sandbox().runCode('None')
    expect(next.results).toHaveLength(0)
    expect(next.executionCount).toBe(e.executionCount! + 1)
  })

  it('streams stdout and stderr as they come, a subprocess\'s too, apart from the result', async () => {
    const out: string[] = []
    const err: string[] = []
    const code = [
      'import subprocess, sys, time',
      'print("one", flush=True)',
      'time.sleep(0.5)',
      'print("oops", file=sys.stderr)',
      'subprocess.run("echo from-child; echo child-err >&2", shell=True)',
      '"done"',
    ].join('\n')
    const e = await sandbox().runCode(code, { onStdout: (m: OutputMessage) => void out.push(m.line), onStderr: (m: OutputMessage) => void err.push(m.line) })
    expect(out.join('')).toBe('one\nfrom-child\n')
    expect(out.length).toBeGreaterThan(1)
    expect(err.join('')).toBe('oops\nchild-err\n')
    expect(e.logs.stdout.join('')).toBe('one\nfrom-child\n')
    expect(e.text).toBe("'done'")
  })

  it('keeps state between calls in a context', async () => {
    await sandbox().runCode('counter = 40\ndef bump(n):\n    global counter\n    counter += n\n    return counter')
    expect((await sandbox().runCode('bump(2)')).text).toBe('42')
    expect((await sandbox().runCode('counter')).text).toBe('42')
  })

  it('reports an error with its name, value and traceback, and the context goes on', async () => {
    const e = await sandbox().runCode('def f():\n    raise ValueError("bad value")\nf()')
    expect(e.error).toMatchObject({ name: 'ValueError', value: 'bad value' })
    expect(e.error!.traceback).toContain('raise ValueError("bad value")')
    expect(e.error!.traceback).not.toContain('rds-interpreter')
    const syntax = await sandbox().runCode('1 +')
    expect(syntax.error?.name).toBe('SyntaxError')
    expect((await sandbox().runCode('counter')).text).toBe('42')
  })

  it('sets env_vars for one execution only, over the sandbox\'s own', async () => {
    const code = 'import os, subprocess\n(os.environ.get("ONLY_NOW"), os.environ.get("SANDBOX_WIDE"), subprocess.run("echo $ONLY_NOW", shell=True, capture_output=True, text=True).stdout)'
    expect((await sandbox().runCode(code, { envs: { ONLY_NOW: 'yes' } })).text).toBe("('yes', 'everywhere', 'yes\\n')")
    expect((await sandbox().runCode(code)).text).toBe("(None, 'everywhere', '\\n')")
  })

  it('offers the formats an object has (_repr_html_, display())', async () => {
    const e = await sandbox().runCode('class T:\n    def __repr__(self): return "T()"\n    def _repr_html_(self): return "<b>T</b>"\ndisplay(T())\nT()')
    expect(e.results.map((r) => [r.isMainResult, r.text, r.html])).toEqual([
      [false, 'T()', '<b>T</b>'],
      [true, 'T()', '<b>T</b>'],
    ])
  })

  it('runs a cell with top-level await', async () => {
    expect((await sandbox().runCode('import asyncio\nawait asyncio.sleep(0.01)\n"awaited"')).text).toBe("'awaited'")
  })

  it('a run past its timeoutMs is interrupted (KeyboardInterrupt), and the context keeps its state', async () => {
    await expect(sandbox().runCode('import time\nstuck = True\ntime.sleep(600)', { timeoutMs: 5_000 })).rejects.toThrow(/Execution timed out/)
    // The interrupt reached the code: the context answers again, with what it had.
    const t0 = performance.now()
    expect((await sandbox().runCode('stuck', { timeoutMs: 30_000 })).text).toBe('True')
    console.log(`code interpreter: the next run after an interrupt answered in ${Math.round(performance.now() - t0)} ms`)
  })
})

describe('code contexts', () => {
  it('a new context is isolated; it is listed, restarted empty, and removed', async () => {
    await sandbox().runCode('shared_name = "default context"')
    const ctx = await sandbox().createCodeContext({ cwd: '/home/user' })
    expect(ctx).toMatchObject({ language: 'python', cwd: '/home/user' })
    const missing = await sandbox().runCode('shared_name', { context: ctx })
    expect(missing.error?.name).toBe('NameError')
    await sandbox().runCode('mine = 1', { context: ctx })
    expect((await sandbox().runCode('mine', { context: ctx })).text).toBe('1')
    expect((await sandbox().listCodeContexts()).map((c) => c.id)).toContain(ctx.id)

    await sandbox().restartCodeContext(ctx)
    expect((await sandbox().runCode('"mine" in globals()', { context: ctx })).text).toBe('False')
    await sandbox().removeCodeContext(ctx)
    expect((await sandbox().listCodeContexts()).map((c) => c.id)).not.toContain(ctx.id)
    await expect(sandbox().runCode('1', { context: ctx })).rejects.toThrow(/code_context_not_found/)
    // Not a command of the sandbox: the interpreter's processes stay out of commands.list().
    expect((await sandbox().commands.list()).filter((p) => p.cmd === 'python3')).toEqual([])
  })

  it('a context whose process dies says so, and its next run starts afresh', async () => {
    const ctx = await sandbox().createCodeContext()
    await sandbox().runCode('kept = 1', { context: ctx })
    const died = await sandbox().runCode('import os\nos._exit(7)', { context: ctx })
    expect(died.error).toMatchObject({ name: 'DeadKernelError', value: expect.stringContaining('exit code 7') })
    expect((await sandbox().runCode('"kept" in globals()', { context: ctx })).text).toBe('False')
    await sandbox().removeCodeContext(ctx)
  })

  it('asks for JavaScript: a clear error, not a silent Python run', async () => {
    const e = await sandbox().runCode('1+1', { language: 'js' })
    expect(e.error).toMatchObject({ name: 'UnsupportedLanguage' })
    expect(e.error!.value).toContain('Python only')
  })
})

describe('isolation and /home/user', () => {
  it('runs as the sandbox user with no_new_privs, in /home/user, the workspace', async () => {
    const e = await sandbox().runCode('import os\n(os.getuid(), os.getgid(), os.getcwd(), [l for l in open("/proc/self/status") if l.startswith("NoNewPrivs")][0].split()[1])')
    expect(e.text).toBe("(1000, 1000, '/home/user', '1')")
  })

  it('/home/user is the workspace for commands and code, while /v1 still names only /workspace', async () => {
    await sandbox().commands.run('mkdir -p /home/user/hu && cd /home/user/hu && echo from-command > a.txt')
    expect(await sandbox().files.read('/home/user/hu/a.txt')).toBe('from-command\n')
    expect((await sandbox().runCode('open("/home/user/hu/a.txt").read()')).text).toBe("'from-command\\n'")
    const v1 = await mgr.request('GET', `/v1/vms/${sandbox().sandboxId}/files?path=${encodeURIComponent('/workspace/hu/a.txt')}`)
    expect(v1.status).toBe(200)
    const outside = await mgr.request('GET', `/v1/vms/${sandbox().sandboxId}/files?path=${encodeURIComponent('/home/user/hu/a.txt')}`)
    expect(outside.status).toBe(400)
    expect(outside.body).toMatchObject({ code: 'path_not_allowed' })
  })
})
