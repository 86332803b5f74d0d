// Host-side tests only: the same handshake and HTTP/2 server over a Unix socket, so tests
// exercise the production code path without a VM. Never used in the guest (no listener there
// that user code could reach).
import fs from 'node:fs'
import net from 'node:net'

export function listenUnix(socketPath: string, onSocket: (sock: net.Socket) => void): Promise<net.Server> {
  fs.rmSync(socketPath, { force: true })
  const server = net.createServer(onSocket)
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    // umask around listen() so the socket is never briefly reachable by others.
    const old = process.umask(0o177)
    server.listen(socketPath, () => {
      process.umask(old)
      fs.chmodSync(socketPath, 0o600)
      resolve(server)
    })
  })
}
