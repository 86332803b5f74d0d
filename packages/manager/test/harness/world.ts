// A stand-in "outside world" for network tests and benches: a network namespace the test makes,
// joined to the host by a veth pair and routed from it, with HTTP servers on two addresses and a
// DNS server (world-servers.mjs). Addresses are from TEST-NET-2 (198.51.100.0/24), which is never
// routed anywhere real, so the only place test traffic can go is here. TEST-NET-2 is not "the
// internet" for the manager either (EGRESS_EXCLUDED_CIDRS): managerEnv() makes it count as public.
//
// With `privateAddress`, a third HTTP server listens on that address (a private or otherwise
// excluded one), reached from the host by a /32 route into this namespace only; the DNS server
// answers names whose first label is "private" with it.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { EXCLUDED_DEFAULT } from '../../src/runtime/network/egress-policy.ts'

const SERVERS = path.resolve(import.meta.dirname, 'world-servers.mjs')

export class OutsideWorld {
  readonly netns: string
  readonly hostIf: string
  readonly hostAddress = '198.51.100.1'
  readonly serverA = '198.51.100.2'
  readonly serverB = '198.51.100.3'
  readonly dns = '198.51.100.53'
  readonly port = 8080
  readonly privateAddress: string | undefined
  private servers: ChildProcess | undefined

  constructor(tag = String(process.pid % 100000), opts: { privateAddress?: string } = {}) {
    this.netns = `rdsworld-${tag}`
    this.hostIf = `rdsw${tag}`.slice(0, 15)
    this.privateAddress = opts.privateAddress
  }

  /** What a test manager needs: the world's resolver, and the world's servers counting as public. */
  managerEnv(): Record<string, string> {
    return { DNS_SERVER_IP: this.dns, EGRESS_EXCLUDED_CIDRS: EXCLUDED_DEFAULT.filter((c) => c !== '198.51.100.0/24').join(',') }
  }

  async start(): Promise<void> {
    this.stopSync()
    const ip = (...a: string[]) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] })
    ip('netns', 'add', this.netns)
    ip('link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.netns)
    ip('addr', 'add', `${this.hostAddress}/24`, 'dev', this.hostIf)
    ip('link', 'set', this.hostIf, 'up')
    for (const a of [this.serverA, this.serverB, this.dns]) ip('-n', this.netns, 'addr', 'add', `${a}/24`, 'dev', 'eth0')
    if (this.privateAddress) ip('-n', this.netns, 'addr', 'add', `${this.privateAddress}/32`, 'dev', 'eth0')
    ip('-n', this.netns, 'link', 'set', 'eth0', 'up')
    ip('-n', this.netns, 'link', 'set', 'lo', 'up')
    // Goes with the link when the namespace is deleted.
    if (this.privateAddress) ip('route', 'add', `${this.privateAddress}/32`, 'dev', this.hostIf)
    const http = [this.serverA, this.serverB, ...(this.privateAddress ? [this.privateAddress] : [])]
    const child = spawn('nsenter', [`--net=/run/netns/${this.netns}`, process.execPath, SERVERS, this.dns, ...http], { stdio: ['ignore', 'pipe', 'inherit'] })
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
