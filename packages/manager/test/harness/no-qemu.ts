// Setup file of the unit project: proves that no test in it starts a VM. QEMU is found on PATH
// (QEMU_BIN defaults to a bare name, and the driver starts it through nsenter), so a stand-in
// that only records its arguments goes first on this worker's PATH; and a QEMU this worker
// started by any other path is still its child, which the check after the file looks for.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll } from 'vitest'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-noqemu-'))
const calls = path.join(dir, 'calls')
for (const name of ['qemu-system-x86_64', 'qemu-system-aarch64']) {
  fs.writeFileSync(path.join(dir, name), `#!/bin/sh\nprintf '%s\\n' "$0 $*" >> '${calls}'\nexit 1\n`, { mode: 0o755 })
}
process.env.PATH = `${dir}:${process.env.PATH ?? ''}`
delete process.env.QEMU_BIN

/** QEMU processes (any, with our `rds:` marker or not) whose parent is this test worker. */
function qemuChildren(): string[] {
  const found: string[] = []
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      const ppid = /^PPid:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
      if (Number(ppid) === process.pid && path.basename(cmd[0] ?? '').startsWith('qemu-system')) found.push(`${pid} ${cmd.join(' ').trim()}`)
    } catch {
      // exited meanwhile
    }
  }
  return found
}

afterAll(() => {
  const attempts = fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8').trim() : ''
  const running = qemuChildren()
  fs.rmSync(dir, { recursive: true, force: true })
  if (attempts || running.length) {
    throw new Error(`a unit test tried to start QEMU; tests that boot VMs belong in packages/manager/test/integration or security:\n${[attempts, ...running].filter(Boolean).join('\n')}`)
  }
})
