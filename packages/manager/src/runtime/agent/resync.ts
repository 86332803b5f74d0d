// Host side of the channel resync (protocol/handshake.ts): connect to the VM's channel
// socket, repeat SYNC with a fresh token every SYNC_INTERVAL_MS until the guest answers one of
// them, then wait for the ACK of the last token sent and drop every byte up to it (stale bytes
// of an earlier session, and the guest's ACKs of this connection's earlier SYNCs).
//
// The guest answers every SYNC it reads before the preface, so once it has answered any of this
// connection's tokens it will answer the last one too: SYNCs stop at the first answer. Waiting
// for the latest token while still sending new ones would never end when a guest round trip
// takes longer than SYNC_INTERVAL_MS (a guest resumed under TCG on a loaded host, its code not
// yet translated), and the boot would time out with the agent alive and answering.
//
// Unless the guest's session ends between two answers: a guest restored from a snapshot can
// answer the first SYNC and then see its port close under it, and the later SYNCs are lost with
// that session. So a last token left unanswered for a while is replaced by a new one, at growing
// intervals. "A while" is several of the round trips the first answer showed, never less than
// SYNC_RETRY_MS: a new token makes a slow guest's answer to the old one worthless, so replacing
// it sooner than the guest can answer would only push the end out.
import net from 'node:net'
import { ACK_PREFIX, ackLine, SYNC_INTERVAL_MS, syncLine } from '@rds/protocol'

let counter = 0

/** The least time the last token may go unanswered before a new SYNC replaces it; doubles each time. */
const SYNC_RETRY_MS = 250
/** ... and in round trips of the first answer. */
const SYNC_RETRY_ROUND_TRIPS = 4

export function connectAndResync(socketPath: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath)
    const base = `${process.pid}-${Date.now().toString(36)}-${++counter}`
    // Tokens of this connection only: an ACK of an earlier connection's token proves nothing.
    const ackOfThisConnection = new RegExp(`${ACK_PREFIX}${base}-(\\d+)\n`)
    let n = 0
    let token = ''
    const sentAt: number[] = []
    let seen = ''
    let timer: NodeJS.Timeout | undefined
    const fail = (err: Error) => {
      cleanup()
      // A half-open connection would hold QEMU's single client slot: always destroy it.
      sock.destroy()
      reject(err)
    }
    const deadline = setTimeout(() => fail(new Error('agent did not answer the channel resync')), timeoutMs)
    let retry: NodeJS.Timeout | undefined
    const stopSyncs = () => {
      if (timer) clearInterval(timer)
      timer = undefined
    }
    const resyncLater = (ms: number) => {
      retry = setTimeout(() => {
        sendSync()
        resyncLater(ms * 2)
      }, ms)
    }
    const cleanup = () => {
      clearTimeout(deadline)
      clearTimeout(retry)
      stopSyncs()
      sock.off('data', onData)
      sock.off('error', fail)
      sock.off('close', onClose)
    }
    const sendSync = () => {
      token = `${base}-${++n}`
      sentAt[n] = Date.now()
      sock.write(syncLine(token))
    }
    const onData = (d: Buffer) => {
      // Only the tail can still contain a partial ACK line; keep the buffer bounded.
      seen = (seen + d.toString('latin1')).slice(-4096)
      const ack = ackLine(token)
      const at = seen.indexOf(ack)
      if (at < 0) {
        const answered = timer ? ackOfThisConnection.exec(seen) : null
        if (answered) {
          stopSyncs()
          const roundTrip = Date.now() - (sentAt[Number(answered[1])] ?? Date.now())
          resyncLater(Math.max(SYNC_RETRY_MS, SYNC_RETRY_ROUND_TRIPS * roundTrip))
        }
        return
      }
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
