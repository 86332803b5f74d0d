// rds-exec --pty on the host: a host build of guest/init/rds-exec.c run as root, dropping to
// nobody, with the agent's side of the three pipes (stdin, output, control on fd 3) held here.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const helperSrc = path.join(repo, 'guest/init/rds-exec.c')
const canRun = process.getuid?.() === 0 && spawnSync('gcc', ['--version']).status === 0
const NOBODY = '65534'

let dir: string
let helper: string

interface Terminal {
  input: Writable
  control: Writable
  /** Resolves once the output holds `text`. */
  waitFor(text: string): Promise<void>
  done: Promise<{ code: number | null; output: string }>
}

function openTerminal(argv: string[], size = '80x24'): Terminal {
  const child = spawn(helper, ['--uid', NOBODY, '--gid', NOBODY, '--cwd', dir, '--pty', size, '--', ...argv], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] })
  let output = ''
  const waiters: { text: string; resolve: () => void }[] = []
  child.stdout!.on('data', (c: Buffer) => {
    output += c.toString('utf8')
    for (const w of waiters.filter((w) => output.includes(w.text))) w.resolve()
  })
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')))
  const done = new Promise<{ code: number | null; output: string }>((resolve) => child.once('close', (code) => resolve({ code, output: output + stderr })))
  return {
    input: child.stdin!,
    control: child.stdio[3] as Writable,
    waitFor: (text) =>
      output.includes(text)
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            waiters.push({ text, resolve })
            void done.then(() => (output.includes(text) ? resolve() : reject(new Error(`ended without ${JSON.stringify(text)}: ${JSON.stringify(output + stderr)}`))))
          }),
    done,
  }
}

describe.skipIf(!canRun)('rds-exec --pty', () => {
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-pty-'))
    fs.chmodSync(dir, 0o755)
    helper = path.join(dir, 'rds-exec')
    const cc = spawnSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', helper, helperSrc], { encoding: 'utf8' })
    if (cc.status !== 0) throw new Error(cc.stderr)
  })
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('gives the program a terminal of the asked size as its stdio, as the user', async () => {
    const t = openTerminal(['sh', '-c', 'tty; stty size; id -u; [ -t 0 ] && [ -t 2 ] && echo all-tty'], '100x30')
    const { code, output } = await t.done
    expect(code).toBe(0)
    expect(output).toMatch(/^\/dev\/pts\/\d+\r\n30 100\r\n65534\r\nall-tty\r\n$/)
  })

  it('resizes on a control line, and the program sees the new size', async () => {
    const t = openTerminal(['sh', '-c', 'stty size; read x; stty size'])
    await t.waitFor('24 80')
    // Control is read before input, so the newline sent after the resize is read after it too.
    t.control.write('resize 132 43\n')
    t.input.write('\n')
    const { code, output } = await t.done
    expect(code).toBe(0)
    expect(output).toContain('43 132')
  })

  it('turns a typed Ctrl-C into SIGINT for the foreground job (exit 130)', async () => {
    const t = openTerminal(['sh', '-c', 'echo ready; exec sleep 100'])
    await t.waitFor('ready')
    // Before or after the exec, the foreground job dies of SIGINT.
    t.input.write('\x03')
    expect((await t.done).code).toBe(130)
  })

  it('sends a signal named on the control pipe to the foreground job, and ignores lines it does not know', async () => {
    const t = openTerminal(['sh', '-c', 'trap "echo got-term; exit 3" TERM; echo ready; while :; do sleep 0.1; done'])
    await t.waitFor('ready')
    t.control.write('bogus line\nresize 0 0\nsignal 15\n')
    const { code, output } = await t.done
    expect(code).toBe(3)
    expect(output).toContain('got-term')
  })

  it('passes on all output written before the exit, and ends when the program does even if a child keeps the terminal', async () => {
    const t = openTerminal(['sh', '-c', 'sleep 100 & head -c 300000 /dev/zero | tr "\\0" a; exit 5'])
    const { code, output } = await t.done
    expect(code).toBe(5)
    expect(output.replace(/[^a]/g, '').length).toBe(300000)
  })

  it('refuses a size outside 1..1000', () => {
    const r = spawnSync(helper, ['--pty', '0x24', '--', 'true'], { encoding: 'utf8' })
    expect(r.status).toBe(127)
    expect(r.stderr).toContain('--pty COLSxROWS')
  })
})
