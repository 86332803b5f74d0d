// Runs a short host command and fails with its stderr. For long-lived processes see vmm/qemu.
import { execFile } from 'node:child_process'

export class CommandError extends Error {
  readonly stderr: string
  constructor(message: string, stderr: string) {
    super(message)
    this.stderr = stderr
  }
}

export function run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new CommandError(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`, stderr))
      else resolve(stdout)
    })
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => {})
      child.stdin!.end(opts.input)
    }
  })
}
