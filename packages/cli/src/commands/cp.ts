// sheesh cp <local> <id>:<dir> | <id>:<path> <local-dir>: copies through the API's tar.gz
// transfers, packed and unpacked with the host's tar; progress on stderr for large transfers.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { Sandbox } from '@run-dat-sheesh/sdk/source'
import { UsageError, type Command } from '../command.ts'
import { transferProgress } from '../progress.ts'

const remote = (s: string) => /^([0-9a-f-]{8,}):(.*)$/.exec(s)

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
      if (!fs.existsSync(src)) throw new UsageError(`${from} does not exist`)
      // Packed as it is sent: a large directory is never held in memory.
      const tar = spawn('tar', ['-czf', '-', '-C', path.dirname(src), path.basename(src)], { stdio: ['ignore', 'pipe', 'inherit'] })
      const tick = transferProgress('uploading')
      tar.stdout.on('data', (chunk: Buffer) => tick(chunk.length))
      const packed = new Promise<number | null>((r) => tar.once('close', r))
      await sb.files.upload(Readable.toWeb(tar.stdout) as ReadableStream<Uint8Array>, up[2] || '/workspace')
      tick(0, true)
      const code = await packed
      if (code !== 0) throw new Error(`tar could not pack ${from} (exit ${code})`)
      return out(`copied ${from} to ${to}`)
    }
    if (down && !up) {
      const sb = await Sandbox.connect(down[1]!, client)
      fs.mkdirSync(to, { recursive: true })
      const tar = spawn('tar', ['-xzf', '-', '-C', to], { stdio: ['pipe', 'inherit', 'inherit'] })
      const tick = transferProgress('downloading')
      for await (const chunk of Readable.fromWeb(await sb.files.download(down[2]!) as never)) {
        tick((chunk as Buffer).length)
        if (!tar.stdin.write(chunk)) await new Promise((r) => tar.stdin.once('drain', r))
      }
      tar.stdin.end()
      tick(0, true)
      const code = await new Promise<number | null>((r) => tar.once('close', r))
      if (code !== 0) throw new Error(`tar could not unpack the download (exit ${code})`)
      return out(`copied ${from} to ${to}`)
    }
    throw new UsageError('exactly one side of cp is a VM path (<id>:<path>)')
  },
}
