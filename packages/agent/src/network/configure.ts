// Applies the host-assigned network to the guest's only NIC. Runs at every host (re)connect;
// when the interface already matches nothing is touched, so live connections are not
// disturbed. After a snapshot restore the clone's copy of the old address is replaced.
import fs from 'node:fs'
import { spawn } from 'node:child_process'
import type { GuestNetwork } from '@rds/protocol'
import type { AgentConfig } from '../config.ts'

interface IpAddrShow {
  ifname: string
  address?: string
  operstate?: string
  flags?: string[]
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>
}

export async function configureNetwork(config: AgentConfig, net: GuestNetwork): Promise<void> {
  const links = JSON.parse(await ip(config, ['-j', 'addr', 'show'])) as IpAddrShow[]
  const nic = links.find((l) => l.ifname !== 'lo')
  if (!nic) throw new Error('no network interface in the guest')
  const dev = nic.ifname
  const v4 = (nic.addr_info ?? []).filter((a) => a.family === 'inet')
  const addressOk = v4.length === 1 && v4[0]!.local === net.address && v4[0]!.prefixlen === net.prefixLength
  const macOk = nic.address === net.mac
  const up = nic.flags?.includes('UP') ?? false
  if (!macOk || !addressOk || !up) {
    const cmds: string[][] = []
    if (!macOk) cmds.push(['link', 'set', 'dev', dev, 'down'], ['link', 'set', 'dev', dev, 'address', net.mac])
    if (!addressOk) cmds.push(['addr', 'flush', 'dev', dev], ['addr', 'add', `${net.address}/${net.prefixLength}`, 'dev', dev])
    cmds.push(['link', 'set', 'dev', dev, 'up'], ['neigh', 'flush', 'dev', dev])
    for (const c of cmds) await ip(config, c)
  }
  await ip(config, ['route', 'replace', 'default', 'via', net.gateway, 'dev', dev])
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

function ip(config: AgentConfig, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(config.ip, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    p.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')))
    p.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')))
    p.on('error', reject)
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`ip ${args.join(' ')}: ${err.trim() || `exit ${code}`}`))))
  })
}
