// Hands a handshaken stream to the HTTP/2 server and tears it down completely when the session
// ends. http2's graceful close calls shutdown(), which a virtio-serial char device refuses
// (ENOTSOCK), leaving the fd open forever; so the socket is always destroyed by hand.
import type http2 from 'node:http2'
import type { Duplex } from 'node:stream'
import { log } from '../log.ts'
import { awaitPreface } from './resync.ts'

const GOAWAY_GRACE_MS = 5

export interface SessionProbe {
  /** A session with no frame in or out this long is pinged. */
  idleMs: number
  /** A ping not acknowledged this long means the session is dead: the port is reopened. */
  ackMs: number
}

/**
 * For a session whose host is gone without the guest seeing it: a VM restored from a snapshot
 * taken mid-session, or a host that reconnected before the guest read again. Between frames the
 * new host's first SYNC line is a protocol error that ends the session at once; inside a frame
 * it is taken as the rest of that frame, and the session waits for bytes that never come (or,
 * with the Node 20 this was first seen on, stops reading after the error without an event), and
 * the channel would be dead for good. An idle session is pinged; an unanswered ping ends it, and
 * the port reopens for the new host. Only idle sessions are probed, so a busy one costs nothing
 * and an idle VM answers one ping per `idleMs`. The ack deadline is generous: a false alarm cuts
 * a live channel, which the manager notices only through failed requests.
 */
export const SESSION_PROBE: SessionProbe = { idleMs: 10_000, ackMs: 15_000 }

export function serveConnection(server: http2.Http2Server, sock: Duplex, probe: SessionProbe = SESSION_PROBE): void {
  sock.on('error', () => sock.destroy())
  // The host leaving shows up as EOF on the port; nothing more will ever arrive on this fd.
  sock.on('end', () => sock.destroy())
  awaitPreface(sock, (ready) => {
    server.once('session', (session) => {
      session.on('close', () => ready.destroy())
      session.on('goaway', () => setTimeout(() => ready.destroy(), GOAWAY_GRACE_MS))
      session.on('error', (err) => {
        log.warn(`control session: ${err.message}; closing it for the next host`)
        ready.destroy()
      })
      session.setTimeout(probe.idleMs, () => pingOrEnd(session, ready, probe.ackMs))
    })
    // Paused with the preface unshifted: http2 reads what is buffered on its next tick.
    server.emit('connection', ready)
  })
}

function pingOrEnd(session: http2.ServerHttp2Session, sock: Duplex, ackMs: number): void {
  if (session.destroyed) return
  // Destroying a socket that closed meanwhile does nothing.
  const deadline = setTimeout(() => {
    if (sock.destroyed) return
    log.warn(`control session: no answer to a ping within ${ackMs} ms; closing it for the next host`)
    sock.destroy()
  }, ackMs)
  try {
    // A dead session queues the ping and never sends it: the deadline decides.
    session.ping((err) => {
      if (!err) clearTimeout(deadline)
    })
  } catch {
    sock.destroy()
  }
}
