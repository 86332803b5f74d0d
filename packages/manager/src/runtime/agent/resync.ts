// Host side of the channel resync (protocol/handshake.ts): connect to the VM's channel
// socket, repeat SYNC with a fresh token every SYNC_INTERVAL_MS until the guest ACKs the
// latest one, and drop every byte before that ACK (stale bytes of an earlier session).
import net from 'node:net'
import { ackLine, SYNC_INTERVAL_MS, syncLine } from '@rds/protocol'

let counter = 0

export function connectAndResync(socketPath: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath)
    const base = `${process.pid}-${Date.now().toString(36)}-${++counter}`
    let n = 0
    let token = ''
    let seen = ''
    let timer: NodeJS.Timeout | undefined
    const fail = (err: Error) => {
      cleanup()
      // A half-open connection would hold QEMU's single client slot: always destroy it.
      sock.destroy()
      reject(err)
    }
    const deadline = setTimeout(() => fail(new Error('agent did not answer the channel resync')), timeoutMs)
    const cleanup = () => {
      clearTimeout(deadline)
      if (timer) clearInterval(timer)
      sock.off('data', onData)
      sock.off('error', fail)
      sock.off('close', onClose)
    }
    const sendSync = () => {
      token = `${base}-${++n}`
      sock.write(syncLine(token))
    }
    const onData = (d: Buffer) => {
      // Only the tail can still contain a partial ACK line; keep the buffer bounded.
      seen = (seen + d.toString('latin1')).slice(-4096)
      const ack = ackLine(token)
      const at = seen.indexOf(ack)
      if (at < 0) return
      cleanup()
      const rest = Buffer.from(seen.slice(at + ack.length), 'latin1')
      if (rest.length) sock.unshift(rest)
      resolve(sock)
    }
    const onClose = () => fail(new Error('channel closed during resync'))
    sock.on('data', onData)
    sock.on('error', fail)
    sock.on('close', onClose)
    sock.once('connect', () => {
      sendSync()
      timer = setInterval(sendSync, SYNC_INTERVAL_MS)
    })
  })
}
