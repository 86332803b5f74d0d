// The host end of a VM's console. QEMU serves the guest console on a Unix socket (not a file:
// a file chardev grows as long as guest root writes to /dev/console); the manager reads it
// and keeps the newest output in a RotatingLog of bounded size. It always reads, whatever
// the disk does, so the console never waits on the host: QEMU drops console bytes it cannot
// hand over (virtio-console does not throttle the guest), and while no reader is connected
// (manager restart) the output is dropped as well.
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { RotatingLog } from '../logs/rotating-log.ts'

const MIN_RETRY_MS = 100
const MAX_RETRY_MS = 3000

export class ConsoleCapture {
  private readonly socketPath: string
  private readonly log: RotatingLog
  private sock: net.Socket | undefined
  private closed = false

  constructor(socketPath: string, logFile: string, maxBytes: number) {
    this.socketPath = socketPath
    this.log = new RotatingLog(logFile, maxBytes)
  }

  start(): void {
    void this.loop()
  }

  /** Ends the capture (the VM's process ended, or the manager detaches); what was read is written. */
  async close(): Promise<void> {
    this.closed = true
    this.sock?.destroy()
    await this.log.close()
  }

  private async loop(): Promise<void> {
    let retry = MIN_RETRY_MS
    while (!this.closed) {
      const connected = await this.readUntilClosed()
      if (this.closed) return
      if (connected) retry = MIN_RETRY_MS
      await sleep(retry)
      retry = Math.min(retry * 2, MAX_RETRY_MS)
    }
  }

  /** Resolves when the connection ends; true if it was ever established. */
  private readUntilClosed(): Promise<boolean> {
    return new Promise((resolve) => {
      let connected = false
      const sock = net.connect(this.socketPath)
      this.sock = sock
      sock.once('connect', () => (connected = true))
      sock.on('data', (chunk: Buffer) => this.log.write(chunk))
      sock.on('error', () => sock.destroy())
      sock.once('close', () => resolve(connected))
    })
  }
}
