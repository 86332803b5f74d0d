// Named pipes in root-owned run dirs: the result pipe and a warm runtime's go pipe.
import { spawn } from 'node:child_process'

/** Node has no mkfifo(); the coreutils one costs one short-lived process. */
export function makeFifo(mkfifo: string, file: string, mode: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const p = spawn(mkfifo, ['-m', mode, '--', file], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    p.stderr.on('data', (c: Buffer) => (err += c.toString()))
    p.on('error', reject)
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`mkfifo failed: ${err.trim() || code}`))))
  })
}
