// The classic in-guest attacks of an ordinary user (uid 1000 through the normal exec API): a fork
// bomb and a memory bomb. Each must hit the limits of the user's cgroup (pids.max, memory.max,
// set by the agent on the parent of every exec's group) and die there, while the agent, outside
// that group, keeps answering. Sizes and liveness only, no timing thresholds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ManagerClient } from '../harness/manager-process.ts'
import { sharedManager } from '../harness/shared-manager.ts'

let mgr: ManagerClient
let vm: string

beforeAll(async () => {
  // The suite's shared manager; 256 MiB is not its seed's shape, so this VM is cold-booted.
  mgr = await sharedManager()
  const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
  if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}\n${mgr.output}`)
  vm = r.body.id
})

afterAll(async () => {
  if (vm) await mgr.request('DELETE', `/v1/vms/${vm}`)
})

const cgroupEvent = async (file: string, key: string): Promise<number> => {
  const r = await mgr.exec(vm, `cat /sys/fs/cgroup/rds/${file}`)
  return Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(r.stdout)?.[1] ?? NaN)
}

describe('an ordinary user cannot take the VM from its agent', () => {
  it('runs user code under a process and memory ceiling below the VM', async () => {
    const r = await mgr.exec(vm, 'cat /sys/fs/cgroup/rds/pids.max /sys/fs/cgroup/rds/memory.max; grep MemTotal /proc/meminfo')
    const [pids, mem, total] = r.stdout.trim().split('\n')
    // One process per 512 KiB of the group's memory, at most 1024 (see the agent's sandbox/cgroup.ts).
    expect(Number(pids)).toBe(Math.min(1024, Math.floor(Number(mem) / (512 * 1024))))
    expect(Number(mem)).toBeLessThan(Number(/(\d+)/.exec(total!)![1]) * 1024)
    console.log(`user limits in a 256 MiB VM: pids.max ${pids}, memory.max ${Math.round(Number(mem) / 1048576)} MiB of ${Math.round(Number(/(\d+)/.exec(total!)![1]) / 1024)} MiB`)
  })

  it('survives a fork bomb: the bomb hits pids.max, is killed at its timeout, the agent answers', async () => {
    const before = await cgroupEvent('pids.events', 'max')
    const bomb = await mgr.request('POST', `/v1/vms/${vm}/exec`, { cmd: 'bomb() { bomb | bomb & }; bomb; sleep 60', timeoutMs: 15_000 })
    expect(bomb.status, JSON.stringify(bomb.body)).toBe(200)
    expect(bomb.body).toMatchObject({ exitCode: -1, timedOut: true })
    const hits = (await cgroupEvent('pids.events', 'max')) - before
    expect(hits).toBeGreaterThan(0)
    expect((await mgr.exec(vm, 'echo alive')).stdout).toBe('alive\n')
    expect((await mgr.request('GET', `/v1/vms/${vm}`)).body.state).toBe('RUNNING')
    console.log(`fork bomb: refused a fork ${hits} times at pids.max; killed at its timeout; the agent answered right after`)
  })

  it('survives a memory bomb: the OOM killer takes the bomb inside the user group, the agent answers', async () => {
    const before = await cgroupEvent('memory.events', 'oom_kill')
    const bomb = await mgr.exec(vm, "python3 -c 'a = []\nwhile True: a.append(bytearray(8 << 20))'")
    expect(bomb.exitCode).toBe(137)
    expect(await cgroupEvent('memory.events', 'oom_kill')).toBeGreaterThan(before)
    expect((await mgr.exec(vm, 'echo alive')).stdout).toBe('alive\n')
    const run = await mgr.request('POST', `/v1/vms/${vm}/run-ts`, { code: 'result.set(1 + 1)' })
    expect(run.body.result).toBe(2)
    console.log(`memory bomb: killed by the group's OOM killer (oom_kill +${await cgroupEvent('memory.events', 'oom_kill') - before}); agent and run-ts answered right after`)
  })
})
