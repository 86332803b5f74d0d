// sheesh shell <id> [-- <cmd…>]: an interactive terminal in the VM (a login bash by default) on a
// pseudo-terminal of this terminal's size. Keys go to the VM as typed (raw mode), the window's
// resizes follow, and the shell's exit code becomes sheesh's. Without a terminal (a pipe), input
// is passed through as it comes, so scripts can drive it too.
import { Sandbox } from '@run-dat-sheesh/sdk/source'
import { need, type Command } from '../command.ts'

export const shell: Command = {
  name: 'shell',
  usage: 'sheesh shell <id> [--cwd DIR] [-- <command…>]',
  summary: 'Open an interactive terminal in a VM (a login bash unless a command is given)',
  options: { cwd: { type: 'string' } },
  async run(args, values, client) {
    const [id, ...cmd] = args
    const sb = await Sandbox.connect(need(id), client)
    const { stdin, stdout } = process
    const size = () => ({ cols: stdout.columns || 80, rows: stdout.rows || 24 })
    const term = await sb.pty.create({
      ...size(),
      ...(cmd.length ? { args: cmd } : {}),
      ...(values.cwd ? { cwd: values.cwd as string } : {}),
      tag: 'sheesh-shell',
      onData: (bytes) => stdout.write(bytes),
    })
    const raw = stdin.isTTY
    if (raw) stdin.setRawMode(true)
    const onInput = (chunk: Buffer) => term.send(chunk)
    const onResize = () => term.resize(size().cols, size().rows)
    // A pipe that ends is the end of input: the terminal's EOF character (Ctrl-D) tells the shell.
    const onEnd = () => term.send('\x04')
    stdin.on('data', onInput)
    stdin.on('end', onEnd)
    stdout.on('resize', onResize)
    try {
      const { exitCode } = await term.exited
      return exitCode < 0 ? 1 : exitCode
    } finally {
      stdin.off('data', onInput)
      stdin.off('end', onEnd)
      stdout.off('resize', onResize)
      if (raw) stdin.setRawMode(false)
      stdin.pause()
    }
  },
}
