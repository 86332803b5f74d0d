// Does a real guest boot under KVM on this host? /dev/kvm existing is not enough (nested
// PVM hosts expose it but cannot run a stock kernel), so boot the default image once with
// `-accel kvm` and wait for its agent. Used only when VMM_ACCEL=auto and /dev/kvm exists.
import crypto from 'node:crypto'
import fsp from 'node:fs/promises'
import path from 'node:path'
import type { FastifyBaseLogger } from 'fastify'
import { createOverlay } from '../storage/overlay.ts'
import { AgentClient } from '../agent/client.ts'
import type { BootFiles } from './driver.ts'
import { createQemuDriver } from './qemu/driver.ts'

const PROBE_TIMEOUT_MS = 20_000

/** `files`: the default image, if there is one yet (without it there is nothing to boot). */
export async function probeKvm(o: { qemuBin: string; storageRoot: string; files: BootFiles | undefined; log: FastifyBaseLogger }): Promise<boolean> {
  const { log } = o
  if (!o.files) {
    log.info('no default image to probe KVM with; using TCG for this run')
    return false
  }
  const dir = path.join(o.storageRoot, `kvm-probe-${crypto.randomUUID().slice(0, 8)}`)
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 })
  const driver = createQemuDriver({ qemuBin: o.qemuBin, accel: () => 'kvm', instance: 'kvm-probe' })
  let agent: AgentClient | undefined
  try {
    await createOverlay(path.join(dir, 'overlay.ext4'), 64 * 1024 * 1024)
    const handle = await driver.boot({
      vmId: 'probe',
      cpu: 1,
      memMb: 256,
      ...o.files,
      overlay: path.join(dir, 'overlay.ext4'),
      workDir: dir,
      controlSocket: path.join(dir, 'c.sock'),
      bridgeSocket: path.join(dir, 'b.sock'),
      // Private: the probe's RAM is never snapshotted, so it need not be a shared file.
      memory: { file: path.join(dir, 'memory.ram'), shared: false },
      // Nobody reads it: QEMU drops console output without a reader.
      consoleSocket: path.join(dir, 'con.sock'),
      vmmLog: path.join(dir, 'vmm.log'),
    })
    agent = new AgentClient(path.join(dir, 'c.sock'))
    try {
      await agent.waitReady(PROBE_TIMEOUT_MS, () => handle.isAlive())
      return true
    } catch {
      return false
    } finally {
      agent.close()
      await handle.kill(200)
    }
  } catch (err) {
    log.info({ err: (err as Error).message }, 'KVM probe failed')
    return false
  } finally {
    await fsp.rm(dir, { recursive: true, force: true })
  }
}
