// Hands a handshaken stream to the HTTP/2 server and tears it down completely when the session
// ends. http2's graceful close calls shutdown(), which a virtio-serial char device refuses
// (ENOTSOCK), leaving the fd open forever; so the socket is always destroyed by hand.
import type http2 from 'node:http2'
import type { Socket } from 'node:net'
import { awaitPreface } from './resync.ts'

const GOAWAY_GRACE_MS = 5

export function serveConnection(server: http2.Http2Server, sock: Socket): void {
  sock.on('error', () => sock.destroy())
  // The host leaving shows up as EOF on the port; nothing more will ever arrive on this fd.
  sock.on('end', () => sock.destroy())
  awaitPreface(sock, (ready) => {
    server.once('session', (session) => {
      session.on('close', () => ready.destroy())
      session.on('goaway', () => setTimeout(() => ready.destroy(), GOAWAY_GRACE_MS))
      session.on('error', () => ready.destroy())
    })
    // Paused with the preface unshifted: http2 reads what is buffered on its next tick.
    server.emit('connection', ready)
  })
}
