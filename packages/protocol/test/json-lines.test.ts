// The line reader is what a hostile guest feeds on the peer bridge: it must hold at most `max`
// bytes of an unfinished line, whether the guest sends one endless line or long multi-byte text.
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { expect, it } from 'vitest'
import { readLines } from '../src/json-lines.ts'

async function feed(max: number, write: (s: net.Socket) => void): Promise<{ lines: string[]; destroyed: boolean }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-lines-'))
  const sockPath = path.join(dir, 's.sock')
  const lines: string[] = []
  const server = net.createServer((s) => {
    s.on('error', () => {})
    write(s)
  })
  await new Promise<void>((r) => server.listen(sockPath, r))
  const c = net.connect(sockPath)
  await new Promise<void>((resolve) => readLines(c, max, (l) => lines.push(l), resolve))
  server.close()
  fs.rmSync(dir, { recursive: true, force: true })
  return { lines, destroyed: c.destroyed }
}

it('splits lines across chunks and ends with the stream', async () => {
  const r = await feed(1024, (s) => {
    s.write('{"a":1}\n{"b":')
    setTimeout(() => s.end('2}\n'), 20)
  })
  expect(r.lines).toEqual(['{"a":1}', '{"b":2}'])
})

it('a line that never ends is cut off at the cap, not buffered', async () => {
  let sent = 0
  const r = await feed(64 * 1024, (s) => {
    const chunk = Buffer.alloc(16 * 1024, 0x78)
    const pump = () => {
      while (!s.destroyed && sent < 64 * 1024 * 1024) {
        sent += chunk.length
        if (!s.write(chunk)) return void s.once('drain', pump)
      }
    }
    s.on('close', () => {})
    pump()
  })
  expect(r.destroyed).toBe(true)
  expect(r.lines).toEqual([])
  expect(sent).toBeLessThan(64 * 1024 * 1024)
})

it('counts bytes, not characters', async () => {
  // 300 three-byte characters: 900 bytes, over a cap of 600 although only 300 characters long.
  const r = await feed(600, (s) => s.end(`${'€'.repeat(300)}\n`))
  expect(r.destroyed).toBe(true)
  expect(r.lines).toEqual([])
})
