// A stand-in "outside world" for network tests and benches: a network namespace the test makes,
// joined to the host by a veth pair and routed from it, with HTTP servers on two addresses and a
// DNS server (world-servers.mjs). Addresses are from TEST-NET-2 (198.51.100.0/24), which is never
// routed anywhere real, so the only place test traffic can go is here.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import path from 'node:path'

const SERVERS = path.resolve(import.meta.dirname, 'world-servers.mjs')

export class OutsideWorld {
  readonly netns: string
  readonly hostIf: string
  readonly hostAddress = '198.51.100.1'
  readonly serverA = '198.51.100.2'
  readonly serverB = '198.51.100.3'
  readonly dns = '198.51.100.53'
  readonly port = 8080
  private servers: ChildProcess | undefined

  constructor(tag = String(process.pid % 100000)) {
    this.netns = `rdsworld-${tag}`
    this.hostIf = `rdsw${tag}`.slice(0, 15)
  }

  async start(): Promise<void> {
    this.stopSync()
    const ip = (...a: string[]) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] })
    ip('netns', 'add', this.netns)
    ip('link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.netns)
    ip('addr', 'add', `${this.hostAddress}/24`, 'dev', this.hostIf)
    ip('link', 'set', this.hostIf, 'up')
    for (const a of [this.serverA, this.serverB, this.dns]) ip('-n', this.netns, 'addr', 'add', `${a}/24`, 'dev', 'eth0')
    ip('-n', this.netns, 'link', 'set', 'eth0', 'up')
    ip('-n', this.netns, 'link', 'set', 'lo', 'up')
    const child = spawn('nsenter', [`--net=/run/netns/${this.netns}`, process.execPath, SERVERS, this.dns, this.serverA, this.serverB], { stdio: ['ignore', 'pipe', 'inherit'] })
    this.servers = child
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve())
      child.once('exit', (code) => reject(new Error(`world servers exited (${code})`)))
    })
  }

  url(address: string, p = '/'): string {
    return `http://${address}:${this.port}${p}`
  }

  stopSync(): void {
    this.servers?.kill('SIGKILL')
    this.servers = undefined
    try {
      execFileSync('ip', ['netns', 'del', this.netns], { stdio: 'ignore' })
    } catch {
      // not there
    }
    try {
      execFileSync('ip', ['link', 'del', this.hostIf], { stdio: 'ignore' })
    } catch {
      // went with the namespace
    }
  }
}
