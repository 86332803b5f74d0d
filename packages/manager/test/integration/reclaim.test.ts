// Startup reclamation with real manager processes (runtime/reclaim; the unit test covers each
// liveness rule on fake instances). No VM is booted: no default image, TCG without a probe.
import { execFileSync } from 'node:child_process'
import { afterAll, expect, it } from 'vitest'
import { ManagerProcess } from '../harness/manager-process.ts'

const NO_VM = { RDS_SKIP_DEFAULT_IMAGE: 'true', VMM_ACCEL: 'tcg' }
// One address plan for every manager here: the case a new user hit with 172.16.0.0/24.
const PLAN = { VM_NETWORK_CIDR: '10.203.240.0/24', VM_LINK_CIDR: '169.254.203.240/30' }
const managers: ManagerProcess[] = []
const manager = (env: Record<string, string> = {}, o: { storageRoot?: string } = {}) => {
  const m = new ManagerProcess({ ...NO_VM, ...PLAN, ...env }, o)
  managers.push(m)
  return m
}
const netns = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
const route = () => execFileSync('ip', ['route', 'show', PLAN.VM_NETWORK_CIDR], { encoding: 'utf8' }).trim()

afterAll(async () => {
  for (const m of managers.reverse()) await m.cleanup()
})

it('a manager killed with -9 leaves its network; the next manager on the same address plan removes it and starts', async () => {
  const dead = manager()
  await dead.start()
  await dead.stop('SIGKILL')
  expect(netns()).toContain(dead.netns)
  expect(route()).toContain(`dev rds${dead.netns.slice(4)}`)

  const next = manager({ LOG_LEVEL: 'info' })
  await next.start()
  expect(netns()).not.toContain(dead.netns)
  expect(execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' })).not.toContain(`rds_${dead.netns.slice(4)}`)
  expect(route()).toContain(`dev rds${next.netns.slice(4)}`)
  const line = next.stdout.split('\n').find((l) => l.includes('removed what a manager that is gone left on the host'))
  expect(JSON.parse(line!)).toMatchObject({ instance: dead.netns.slice(4), removed: expect.arrayContaining([`netns ${dead.netns}`]) })
})

it('a live manager is left alone, and a second one on its STORAGE_ROOT refuses to start (exit code 2)', async () => {
  const live = manager({ VM_NETWORK_CIDR: '10.203.241.0/24', VM_LINK_CIDR: '169.254.203.244/30' })
  await live.start()
  // Its start reclaims dead instances, not this one.
  const other = manager({ VM_NETWORK_CIDR: '10.203.242.0/24', VM_LINK_CIDR: '169.254.203.236/30' })
  await other.start()
  expect(netns()).toContain(live.netns)
  expect((await live.request('GET', '/v1/vms')).status).toBe(200)

  // Not cleaned up on its own: the storage root is live's.
  const twin = new ManagerProcess({ ...NO_VM }, { storageRoot: live.storageRoot })
  await expect(twin.start()).rejects.toThrow(/manager exited/)
  expect(await twin.exitCode()).toBe(2)
  expect(twin.stderr).toContain(`configuration error: another manager (pid ${live.pid}) is running with STORAGE_ROOT=${live.storageRoot}`)
  expect((await live.request('GET', '/v1/vms')).status).toBe(200)
})
