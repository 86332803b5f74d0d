// The pause of a snapshot of a running clone (a VM resumed from the image seed: its RAM is a
// private mapping, so the snapshot streams it), live (QEMU precopy, the default under KVM) against
// the stop-then-stream path (the default under TCG), in the same run on the same clone, alternating. The guest keeps a writer
// busy while the snapshot is taken (a counter appended to /dev/shm and to /workspace, synced, and
// 2 MiB of /dev/shm rewritten each round), and every saved state is resumed once to check it is a
// consistent instant (the writer's disk log is read past the page cache).
// Driver level (no manager in the path, the VMM in a cgroup with the manager's limits but not
// jailed): the manager adds a guest `sync` before the snapshot.
// Part of npm run bench:snapshots (alone: npm run bench:snapshots -- --only pause).
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { AgentClient } from '../../packages/manager/src/runtime/agent/client.ts'
import type { VmHandle } from '../../packages/manager/src/runtime/vmm/driver.ts'
import { createQemuDriver, type SnapshotMode } from '../../packages/manager/src/runtime/vmm/qemu/driver.ts'
import { copySparse } from '../../packages/manager/src/runtime/storage/copy.ts'
import { detectCgroupLayout, VmmCgroups } from '../../packages/manager/src/runtime/vmm/confinement/cgroups.ts'
import type { ManagerProcess } from '../../packages/manager/test/harness/manager-process.ts'
import { COUNTER_WRITER, countedLines } from '../../packages/manager/test/harness/counter-writer.ts'
import type { Report } from './report.ts'
import { rawVmFiles } from './raw-vm-files.ts'
import { median, pct, timeIt } from './stats.ts'

export interface SeedFiles {
  imgDir: string
  snapDir: string
  cpu: number
  memMb: number
}

/** The count of a counter log, or -1 when it is not exactly 1..n. */
const counted = (text: string): number => {
  try {
    return countedLines(text)
  } catch {
    return -1
  }
}

export async function measureClonePause(mgr: ManagerProcess, seed: SeedFiles, runs: number, report: Report): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-bench-pause-'))
  // A TAP per VM that runs at once (the two clones and a resumed state): the seed was saved with a NIC.
  const taps = { live: 'rdsbenchp0', stop: 'rdsbenchp1', back: 'rdsbenchp2' }
  for (const tap of Object.values(taps)) execFileSync('ip', ['-n', mgr.netns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap'])
  const drivers = Object.fromEntries((['live', 'stop'] as SnapshotMode[]).map((mode) => [mode, createQemuDriver({ qemuBin: 'qemu-system-x86_64', accel: () => 'tcg', instance: `bench-pause-${mode}`, netnsPath: `/run/netns/${mgr.netns}`, snapshotMode: mode,
    // As in the manager: the VMM's CPU quota is its vCPUs, which a busy guest shares with the thread sending its RAM.
    cgroups: new VmmCgroups(detectCgroupLayout()!, `bench-pause-${mode}`) })]))
  const spec = (d: string, vmId: string, tap: string, memory: { file: string; shared: boolean }) => ({
    vmId,
    cpu: seed.cpu,
    memMb: seed.memMb,
    ...rawVmFiles(seed.imgDir, d),
    net: { tap, mac: '02:00:00:00:be:02' },
    memory,
  })
  const live: VmHandle[] = []
  const ramFiles: string[] = []
  const exec = async (agent: AgentClient, cmd: string) => {
    const r = await agent.call('exec', { cmd, timeoutMs: 60_000 }, 90_000)
    if (r.exitCode !== 0) throw new Error(`exec failed (${r.exitCode}): ${cmd}: ${r.stderr}`)
    return r.stdout
  }
  try {
    // One clone per mode, both resumed from the seed, both running the writer.
    const clones: Record<string, { h: VmHandle; d: string }> = {}
    for (const mode of ['live', 'stop'] as const) {
      const d = path.join(root, mode)
      fs.mkdirSync(d)
      await copySparse(path.join(seed.snapDir, 'overlay.ext4'), path.join(d, 'overlay.ext4'))
      const h = await drivers[mode]!.restore(spec(d, `pause-${mode}`, taps[mode], { file: path.join(seed.snapDir, 'memory.raw'), shared: false }), { stateFile: path.join(seed.snapDir, 'state.bin'), withoutRam: true, ramBytes: fs.statSync(path.join(seed.snapDir, 'memory.raw')).size }).catch((err: Error) => {
        throw new Error(`the seed did not resume: ${err.message}\n${fs.readFileSync(path.join(d, 'vmm.log'), 'utf8').slice(-2000)}`)
      })
      live.push(h)
      const agent = new AgentClient(path.join(d, 'c.sock'))
      await agent.waitReady(300_000, () => h.isAlive())
      await exec(agent, `cat > /workspace/writer.sh <<'EOF'\n${COUNTER_WRITER}\nEOF\n(setsid sh /workspace/writer.sh </dev/null >/dev/null 2>&1 &); sleep 1`)
      agent.close()
      clones[mode] = { h, d }
    }
    const pauses: Record<string, number[]> = { live: [], stop: [] }
    const sizes: Record<string, number[]> = { live: [], stop: [] }
    const calls: Record<string, number[]> = { live: [], stop: [] }
    let checked = 0
    const resumeProblems: string[] = []
    for (let i = 0; i < runs; i++) {
      for (const mode of ['stop', 'live'] as const) {
        const { h, d } = clones[mode]!
        const out = path.join(root, `${mode}-${i}`)
        fs.mkdirSync(out)
        const stateFile = path.join(out, 'state.bin')
        const [t, r] = await timeIt(() => h.snapshot({ stateFile, memoryFile: path.join(out, 'memory.raw'), whilePaused: () => copySparse(path.join(d, 'overlay.ext4'), path.join(out, 'overlay.ext4')) }))
        pauses[mode]!.push(r.pauseMs)
        calls[mode]!.push(t)
        sizes[mode]!.push(fs.statSync(stateFile).size)
        // Resume the first state of each mode: the writer's logs must agree.
        if (i === 0) {
          const rd = path.join(out, 'vm')
          fs.mkdirSync(rd)
          fs.renameSync(path.join(out, 'overlay.ext4'), path.join(rd, 'overlay.ext4'))
          const ram = `/dev/shm/rds-bench-pause-${process.pid}-${mode}.ram`
          ramFiles.push(ram)
          fs.writeFileSync(ram, '')
          fs.truncateSync(ram, r.ramBytes)
          const back = await drivers[mode]!.restore(spec(rd, `pause-${mode}-back`, taps.back, { file: ram, shared: true }), { stateFile, withoutRam: false, ramBytes: r.ramBytes })
          live.push(back)
          const agent = new AgentClient(path.join(rd, 'c.sock'))
          try {
            await agent.waitReady(300_000, () => back.isAlive()).catch((err: Error) => {
              throw new Error(`${mode}: the saved state did not resume: ${err.message} ${fs.readFileSync(path.join(rd, 'vmm.log'), 'utf8').slice(-500)}`)
            })
            await exec(agent, 'touch /dev/shm/stop; for i in $(seq 300); do [ -e /dev/shm/stopped ] && exit 0; sleep 0.1; done; exit 1')
            const mem = counted(await exec(agent, 'cat /dev/shm/mem.log'))
            const disk = counted(await exec(agent, 'dd if=/workspace/disk.log iflag=direct bs=1M status=none'))
            if (mem < 1 || disk < 0 || mem - disk < 0 || mem - disk > 1) throw new Error(`${mode}: the resumed state is not one instant: memory log ${mem}, disk log ${disk}`)
            checked++
          } catch (err) {
            // Reported with the figures rather than thrown: the pauses are still measured.
            resumeProblems.push((err as Error).message)
            process.stderr.write(`  ${(err as Error).message}\n`)
          } finally {
            agent.close()
            await back.kill(500)
          }
        }
        fs.rmSync(out, { recursive: true, force: true })
      }
    }
    const section = `snapshot of a running clone (${seed.cpu} vCPU / ${seed.memMb} MiB, writer busy), driver level, ${runs} runs each`
    const base = median(pauses.stop!)
    report.add({ section, name: 'guest paused, live (median)', value: median(pauses.live!), unit: 'ms', baseline: { name: 'stop-then-stream', value: base }, ratio: base / median(pauses.live!), note: `${checked} states resumed and checked${resumeProblems.length ? `; NOT resumed: ${resumeProblems.join(' | ')}` : ''}` })
    report.add({ section, name: 'guest paused, live (p95)', value: pct(pauses.live!, 95), unit: 'ms', baseline: { name: 'stop-then-stream', value: pct(pauses.stop!, 95) } })
    report.add({ section, name: 'snapshot call, live (median)', value: median(calls.live!), unit: 'ms', baseline: { name: 'stop-then-stream', value: median(calls.stop!) } })
    report.add({ section, name: 'state file, live (median)', value: median(sizes.live!) / 1e6, unit: 'MB', baseline: { name: 'stop-then-stream', value: median(sizes.stop!) / 1e6 }, ratio: median(sizes.live!) / median(sizes.stop!) })
  } finally {
    for (const h of live) await h.kill(500).catch(() => undefined)
    for (const tap of Object.values(taps)) execFileSync('ip', ['-n', mgr.netns, 'link', 'del', tap])
    for (const f of ramFiles) fs.rmSync(f, { force: true })
    fs.rmSync(root, { recursive: true, force: true })
  }
}
