// The channel resync against a guest whose round trip is longer than the host's SYNC interval: a
// guest resumed under TCG on a loaded host, its code not yet translated. The guest end is the
// agent's own handshake (awaitPreface); only the link between them is slowed, by a relay that
// holds every host-to-guest chunk for a while, in order. And against a guest whose session ends
// between two answers, as a restored guest's port can close under it.
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { HTTP2_PREFACE, SYNC_INTERVAL_MS, SYNC_PREFIX, ackLine } from '@rds/protocol'
import { afterEach, expect, it } from 'vitest'
import { awaitPreface } from '../../../agent/src/transport/resync.ts'
import { connectAndResync } from '../../src/runtime/agent/resync.ts'

const closers: (() => void)[] = []
afterEach(() => {
  for (const c of closers.splice(0)) c()
})

/** Resyncs with the guest, sends the preface and returns what the guest says first. */
async function firstBytesOfSession(socketPath: string, timeoutMs: number): Promise<string> {
  const sock = await connectAndResync(socketPath, timeoutMs)
  sock.write(`${HTTP2_PREFACE}\r\nSM\r\n\r\n`)
  const first = await new Promise<string>((resolve) => sock.once('data', (d: Buffer) => resolve(d.toString('latin1'))))
  sock.destroy()
  return first
}

/** A guest behind a link that delays what the host sends by `delayMs`; after the preface it says `greeting`. */
async function slowGuest(delayMs: number, greeting: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-resync-'))
  const guestPath = path.join(dir, 'guest.sock')
  const linkPath = path.join(dir, 'link.sock')
  const guest = net.createServer((sock) =>
    awaitPreface(sock, (ready) => {
      ready.resume()
      ready.write(greeting)
    }),
  )
  const link = net.createServer((host) => {
    const g = net.connect(guestPath)
    host.on('data', (d) => setTimeout(() => g.write(d), delayMs))
    g.on('data', (d) => host.write(d))
    host.on('close', () => g.destroy())
    g.on('close', () => host.destroy())
    host.on('error', () => {})
    g.on('error', () => {})
  })
  await new Promise<void>((r) => guest.listen(guestPath, r))
  await new Promise<void>((r) => link.listen(linkPath, r))
  closers.push(() => {
    guest.close()
    link.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return linkPath
}

it('completes when every guest answer arrives after the next SYNC went out, and drops all the guest’s ACKs', async () => {
  const delayMs = 6 * SYNC_INTERVAL_MS
  const linkPath = await slowGuest(delayMs, 'first bytes of the session')
  // What the host reads next is the session, not an ACK of one of the SYNCs it sent before.
  expect(await firstBytesOfSession(linkPath, 5000)).toBe('first bytes of the session')
})

it('does not replace a slow guest\'s last token before the guest could answer it', async () => {
  // A round trip of 700 ms and 2 s to finish, as a boot's first attempt has: the last token sent
  // before the first answer is answered at ~1.4 s. New tokens every 250 ms (doubling) would each
  // push the end out by a round trip, past 2 s.
  const linkPath = await slowGuest(700, 'slow but there')
  expect(await firstBytesOfSession(linkPath, 2000)).toBe('slow but there')
})

/**
 * A guest that answers the first SYNC late (after more went out), then loses its session and the
 * bytes that arrive for `lostMs` (a closed virtio port drops them), then handshakes afresh.
 */
async function resettingGuest(lostMs: number, greeting: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-resync-'))
  const guestPath = path.join(dir, 'guest.sock')
  const guest = net.createServer((sock) => {
    let seen = ''
    let lostUntil = 0
    const first = (d: Buffer): void => {
      if (lostUntil) {
        if (Date.now() < lostUntil) return
        // The new session: the agent's own handshake from here on, this chunk included.
        sock.off('data', first)
        awaitPreface(sock, (ready) => {
          ready.resume()
          ready.write(greeting)
        })
        sock.emit('data', d)
        return
      }
      seen += d.toString('latin1')
      const at = seen.indexOf(SYNC_PREFIX)
      const nl = seen.indexOf('\n', at)
      if (at < 0 || nl < 0) return
      lostUntil = Date.now() + 4 * SYNC_INTERVAL_MS + lostMs
      // Answered only once the host has sent more; those are lost with the session.
      setTimeout(() => sock.write(ackLine(seen.slice(at + SYNC_PREFIX.length, nl))), 4 * SYNC_INTERVAL_MS)
    }
    sock.on('data', first)
  })
  await new Promise<void>((r) => guest.listen(guestPath, r))
  closers.push(() => {
    guest.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return guestPath
}

it('sends a new SYNC when the last one goes unanswered, so a guest whose session ended after one answer is reached', async () => {
  const guestPath = await resettingGuest(100, 'after the reset')
  expect(await firstBytesOfSession(guestPath, 5000)).toBe('after the reset')
})
