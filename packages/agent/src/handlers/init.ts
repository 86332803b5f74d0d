// Sent by the host after every connect, notably after a snapshot restore, where the guest's
// clock, RNG state and network are copies of the snapshot's. Clock and RNG are best-effort: a
// guest that cannot set its clock is still usable, and the host should not fail the connect
// over it. The network is not: a VM without its address would silently be offline.
import { spawn } from 'node:child_process'
import type { InitReply, InitRequest } from '@rds/protocol'
import type { AgentContext } from '../context.ts'
import { identity } from './health.ts'
import { AgentFailure } from '../errors.ts'
import { log } from '../log.ts'
import { configureNetwork } from '../network/configure.ts'

export async function handleInit(ctx: AgentContext, req: InitRequest): Promise<InitReply> {
  if (!Number.isFinite(req.unixTimeMs) || req.unixTimeMs <= 0) throw new AgentFailure('invalid_request', 'unixTimeMs must be a positive number')
  const entropy = Buffer.from(req.entropy, 'base64')
  ctx.launch.userAslr = req.userAslr !== false
  // After a restore, a warm runtime is a copy of the snapshot's, RNG state and clock included,
  // shared with every other clone: never let one serve a call. The next call starts a fresh one
  // (under this launch policy).
  ctx.warmRuntimes.discardAll()
  // 0: leave the clock alone (agent tests run on a real host).
  const clockMs = ctx.config.setClock ? Math.trunc(req.unixTimeMs) : 0
  // Clock + RNG (one helper process) and the network are independent: done side by side.
  const network = req.network
    ? configureNetwork(ctx.config, req.network).then(
        () => undefined,
        (err: Error) => new AgentFailure('network_failed', `configuring the network failed: ${err.message}`),
      )
    : Promise.resolve(undefined)
  const [clockAndRng, netFailure] = await Promise.all([runRoot(ctx.config.execHelper, ['--host-init', String(clockMs)], entropy), network])
  if (clockAndRng) log.warn(`init: setting the clock or adding entropy failed: ${clockAndRng}`)
  // Unlike clock and RNG, a network that cannot be configured is an error the host must see.
  if (netFailure) throw netFailure
  return identity()
}

/** Runs a root tool; resolves to an error description, or '' on success. */
function runRoot(cmd: string, args: string[], stdin?: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: [stdin ? 'pipe' : 'ignore', 'ignore', 'pipe'] })
    let err = ''
    p.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')))
    p.on('error', (e) => resolve(e.message))
    p.on('close', (code) => resolve(code === 0 ? '' : err.trim() || `exit code ${code}`))
    if (stdin) {
      p.stdin!.on('error', () => {})
      p.stdin!.end(stdin)
    }
  })
}
