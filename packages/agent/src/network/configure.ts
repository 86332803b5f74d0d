// Applies the host-assigned network to the guest's only NIC. Runs at every host (re)connect;
// when the interface already matches nothing is touched, so live connections are not
// disturbed. After a snapshot restore the clone's copy of the old address is replaced.
import fs from 'node:fs'
import { spawn } from 'node:child_process'
import type { GuestNetwork } from '@rds/protocol'
import type { AgentConfig } from '../config.ts'

const SYS_NET = '/sys/class/net'
const IFF_UP = 0x1

/**
 * The address this agent process last applied. A clone's agent holds its source's, which
 * differs from what the host now asks for, so the clone is reconfigured; a plain reconnect
 * matches and nothing is touched. Reading the address back would cost an `ip` spawn, which
 * is slow in a just-restored guest (cold TCG translation cache). Guest root changing the
 * address behind the agent's back only hurts the guest: the host enforces by TAP, not address.
 */
let applied: { address: string; prefixLength: number; gateway: string } | undefined

export async function configureNetwork(config: AgentConfig, net: GuestNetwork): Promise<void> {
  const dev = fs.readdirSync(SYS_NET).find((d) => d !== 'lo')
  if (!dev) throw new Error('no network interface in the guest')
  const mac = fs.readFileSync(`${SYS_NET}/${dev}/address`, 'utf8').trim()
  const up = (Number.parseInt(fs.readFileSync(`${SYS_NET}/${dev}/flags`, 'utf8'), 16) & IFF_UP) !== 0
  const macOk = mac === net.mac
  const addressOk = applied?.address === net.address && applied.prefixLength === net.prefixLength
  // One `ip -batch` for all changes (each spawn costs tens of ms under TCG, and this is on the
  // critical path of a clone's first request). The batch stops at the first failing line.
  const cmds: string[] = []
  if (!macOk) cmds.push(`link set dev ${dev} down`, `link set dev ${dev} address ${net.mac}`)
  if (!addressOk) cmds.push(`addr flush dev ${dev}`, `addr add ${net.address}/${net.prefixLength} dev ${dev}`)
  if (!macOk || !addressOk || !up) cmds.push(`link set dev ${dev} up`, `neigh flush dev ${dev}`)
  if (cmds.length || applied?.gateway !== net.gateway) cmds.push(`route replace default via ${net.gateway} dev ${dev}`)
  if (cmds.length) {
    applied = undefined
    await ip(config, ['-batch', '-'], `${cmds.join('\n')}\n`)
    applied = { address: net.address, prefixLength: net.prefixLength, gateway: net.gateway }
  }
  const resolv = net.nameservers.map((n) => `nameserver ${n}\n`).join('')
  if (readOr(config.resolvConf) !== resolv) writeAtomic(config.resolvConf, resolv)
}

function readOr(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
}

function writeAtomic(file: string, content: string): void {
  const tmp = `${file}.rds-tmp`
  fs.rmSync(file, { force: true }) // may be a dangling symlink left by the image build
  fs.writeFileSync(tmp, content, { mode: 0o644 })
  fs.renameSync(tmp, file)
}

function ip(config: AgentConfig, args: string[], stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(config.ip, args, { stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    if (stdin !== undefined) {
      p.stdin!.on('error', () => {})
      p.stdin!.end(stdin)
    }
    let out = ''
    let err = ''
    p.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')))
    p.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')))
    p.on('error', reject)
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`ip ${args.join(' ')}: ${err.trim() || `exit ${code}`}`))))
  })
}
