// sheesh cp <local> <id>:<dir> | <id>:<path> <local-dir>: copies through the API's tar.gz
// transfers, packed and unpacked with the host's tar; progress on stderr for large transfers.
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { Sandbox } from '@run-dat-sheesh/sdk/source'
import { UsageError, type Command } from '../command.ts'

const remote = (s: string) => /^([0-9a-f-]{8,}):(.*)$/.exec(s)

function progress(label: string, total?: number): (n: number) => void {
  let done = 0
  let last = 0
  return (n) => {
    done += n
    if (!process.stderr.isTTY || Date.now() - last < 200) return
    last = Date.now()
    const mb = (done / 1048576).toFixed(1)
    process.stderr.write(`\r${label} ${mb} MiB${total ? ` of ${(total / 1048576).toFixed(1)} MiB (${Math.round((done / total) * 100)} %)` : ''}   `)
  }
}

export const cp: Command = {
  name: 'cp',
  usage: 'sheesh cp <local-path> <id>:<dir>   |   sheesh cp <id>:<path> <local-dir>',
  summary: 'Copy files or directories into or out of a VM',
  async run(args, _values, client, out) {
    const [from, to] = args
    if (!from || !to) throw new UsageError('cp needs a source and a destination')
    const up = remote(to)
    const down = remote(from)
    if (up && !down) {
      const sb = await Sandbox.connect(up[1]!, client)
      const src = path.resolve(from)
      const archive = execFileSync('tar', ['-czf', '-', '-C', path.dirname(src), path.basename(src)], { maxBuffer: 8 * 1024 ** 3 })
      progress('uploading', archive.length)(archive.length)
      await sb.files.upload(archive, up[2] || '/workspace')
      return out(`copied ${from} to ${to}`)
    }
    if (down && !up) {
      const sb = await Sandbox.connect(down[1]!, client)
      fs.mkdirSync(to, { recursive: true })
      const tar = spawn('tar', ['-xzf', '-', '-C', to], { stdio: ['pipe', 'inherit', 'inherit'] })
      const tick = progress('downloading')
      for await (const chunk of Readable.fromWeb(await sb.files.download(down[2]!) as never)) {
        tick((chunk as Buffer).length)
        if (!tar.stdin.write(chunk)) await new Promise((r) => tar.stdin.once('drain', r))
      }
      tar.stdin.end()
      const code = await new Promise<number | null>((r) => tar.once('close', r))
      if (code !== 0) throw new Error(`tar could not unpack the download (exit ${code})`)
      return out(`copied ${from} to ${to}`)
    }
    throw new UsageError('exactly one side of cp is a VM path (<id>:<path>)')
  },
}
