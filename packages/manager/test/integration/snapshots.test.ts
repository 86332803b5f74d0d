// Snapshots with memory, for real: a running VM is snapshotted (memory, devices, disk), clones
// resume from it with its processes and files, each a distinct machine with its own address,
// policy, clock and randomness. Pause/resume, restarts and broken snapshot files too. The
// clones' network is checked against the stand-in outside world (harness/world.ts).
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ManagerProcess, qemuProcessesOf } from '../harness/manager-process.ts'
import { OutsideWorld } from '../harness/world.ts'
import { guestExec, guestProbe } from '../harness/guest-probe.ts'

const world = new OutsideWorld()
let mgr: ManagerProcess
let sourceId: string
let snapId: string
const clones: string[] = []

const exec = (vmId: string, cmd: string) => guestExec(mgr, vmId, cmd)

async function createVm(body: Record<string, unknown>): Promise<any> {
  const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [], ...body })
  if (r.status !== 201) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}\n${mgr.output.slice(-2000)}`)
  return r.body
}

/** What a manager has on the host for its VMs: rows, VM directories, VMM processes, TAPs, RAM files. */
async function footprint() {
  const list = await mgr.request('GET', '/v1/vms')
  return {
    vms: list.body.length,
    dirs: fs.readdirSync(path.join(mgr.storageRoot, 'vms')).length,
    vmms: qemuProcessesOf(mgr.storageRoot).length,
    taps: (execFileSync('ip', ['-n', mgr.netns, '-o', 'link', 'show', 'type', 'tun'], { encoding: 'utf8' }).match(/\n/g) ?? []).length,
    ramFiles: fs.readdirSync(`/dev/shm/${mgr.netns}`).length,
  }
}

beforeAll(async () => {
  await world.start()
  mgr = new ManagerProcess({ VM_SECRET_KEY: 'snapshot-suite-key', DNS_UPSTREAM: world.dns })
  await mgr.start()
  const vm = await createVm({})
  sourceId = vm.id
  // State only memory holds: a tmpfs file, a background process, an environment in that process.
  await exec(sourceId, 'echo in-memory > /dev/shm/marker; echo on-disk > /workspace/file; (setsid sleep 100000 >/dev/null 2>&1 &); true')
}, 300_000)

afterAll(async () => {
  await mgr?.cleanup()
  world.stopSync()
})

describe('snapshots with memory', () => {
  it('captures memory, devices and disk of a running VM, which goes on running', async () => {
    const r = await mgr.request('POST', `/v1/vms/${sourceId}/snapshots`)
    expect(r.status).toBe(201)
    expect(r.body).toMatchObject({ kind: 'user_overlay', sourceVmId: sourceId, cpu: 1, memMb: 512, hasMemory: true, hasOverlay: true, internal: false })
    expect(r.body.id).toMatch(/^snap-[0-9a-f-]{36}$/)
    expect(r.body.pauseMs).toBeGreaterThan(0)
    // Only pages the guest touched take space; a 512 MiB guest uses far less.
    expect(r.body.sizes.memoryBytes).toBeGreaterThan(0)
    expect(r.body.sizes.memoryBytes).toBeLessThan(512 * 1024 * 1024)
    snapId = r.body.id
    expect((await mgr.request('GET', `/v1/vms/${sourceId}`)).body.state).toBe('RUNNING')
    expect((await exec(sourceId, 'cat /dev/shm/marker')).stdout).toBe('in-memory\n')
    expect((await mgr.request('GET', `/v1/snapshots/${snapId}`)).body.id).toBe(snapId)
    expect((await mgr.request('GET', '/v1/snapshots')).body.map((s: { id: string }) => s.id)).toContain(snapId)
    expect((await mgr.request('GET', '/v1/snapshots?scope=internal')).body).toEqual([])
  })

  it('clones resume with processes, /dev/shm and /workspace as they were, each its own machine', async () => {
    const [one, two] = await Promise.all([createVm({ snapshotId: snapId, allowIps: [world.serverA] }), createVm({ userOverlaySnapshotId: snapId, secretEnv: ['CLONE_SECRET=two'] })])
    clones.push(one.id, two.id)
    for (const c of [one, two]) {
      expect(c).toMatchObject({ state: 'RUNNING', provisionMode: 'snapshot', sourceSnapshotId: snapId })
      const r = await exec(c.id, 'cat /dev/shm/marker /workspace/file; pgrep -x sleep >/dev/null && echo sleeper-alive')
      expect(r.stdout).toBe('in-memory\non-disk\nsleeper-alive\n')
    }
    // Distinct addresses, each configured in its guest.
    expect(new Set([one.guestIp, two.guestIp, (await mgr.request('GET', `/v1/vms/${sourceId}`)).body.guestIp]).size).toBe(3)
    expect((await exec(one.id, 'ip -4 -o addr show dev eth0')).stdout).toContain(`inet ${one.guestIp}/`)
    expect((await exec(two.id, 'ip -4 -o addr show dev eth0')).stdout).toContain(`inet ${two.guestIp}/`)
    // Isolated disks and memory.
    await exec(one.id, 'echo one > /workspace/file; echo one > /dev/shm/marker')
    expect((await exec(two.id, 'cat /workspace/file /dev/shm/marker')).stdout).toBe('on-disk\nin-memory\n')
    expect((await exec(sourceId, 'cat /workspace/file')).stdout).toBe('on-disk\n')
    // Different randomness, a clock set from the host.
    const random = await Promise.all([one.id, two.id].map(async (id) => (await exec(id, 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \\n"')).stdout))
    expect(random[0]).toMatch(/^[0-9a-f]{64}$/)
    expect(random[0]).not.toBe(random[1])
    const guestNow = Number((await exec(two.id, 'date +%s')).stdout)
    expect(Math.abs(guestNow - Date.now() / 1000)).toBeLessThan(30)
    // Secrets are the clone's own request's.
    expect((await exec(two.id, 'echo "[$CLONE_SECRET]"')).stdout).toBe('[two]\n')
    expect((await exec(one.id, 'echo "[$CLONE_SECRET]"')).stdout).toBe('[]\n')
  })

  it('each clone has its own network policy', async () => {
    const a = `${world.serverA}:${world.port}`
    expect(await guestProbe(mgr, clones[0]!, [a])).toEqual({ [a]: 'open' })
    expect(await guestProbe(mgr, clones[1]!, [a])).toEqual({ [a]: 'EHOSTUNREACH' })
  })

  it('boots cold from the snapshot disk when cpu/memMb differ', async () => {
    const vm = await createVm({ snapshotId: snapId, memMb: 384 })
    clones.push(vm.id)
    expect(vm).toMatchObject({ provisionMode: 'boot', memMb: 384, sourceSnapshotId: snapId })
    expect((await exec(vm.id, 'cat /workspace/file; test -e /dev/shm/marker || echo no-marker')).stdout).toBe('on-disk\nno-marker\n')
  })

  it('refuses to delete a snapshot whose memory running clones use, and checks ids', async () => {
    const r = await mgr.request('DELETE', `/v1/snapshots/${snapId}`)
    expect(r.status).toBe(409)
    expect(r.body.code).toBe('snapshot_in_use')
    expect((await mgr.request('GET', '/v1/snapshots/../../etc')).status).toBe(404)
    const bad = await mgr.request('GET', '/v1/snapshots/not-a-snapshot')
    expect(bad.status).toBe(400)
    expect(bad.body.code).toBe('invalid_snapshot_id')
    const missing = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [], snapshotId: 'snap-00000000-0000-4000-8000-000000000000' })
    expect(missing.status).toBe(404)
    expect(missing.body.code).toBe('snapshot_not_found')
  })

  it('pause frees the guest, resume continues where it was', async () => {
    const id = clones[1]!
    expect((await mgr.request('POST', `/v1/vms/${id}/pause`)).status).toBe(204)
    expect((await mgr.request('GET', `/v1/vms/${id}`)).body.state).toBe('PAUSED')
    const busy = await mgr.request('POST', `/v1/vms/${id}/exec`, { cmd: 'true' })
    expect(busy.status).toBe(409)
    expect(busy.body.code).toBe('vm_state_conflict')
    expect((await mgr.request('POST', `/v1/vms/${id}/pause`)).status).toBe(409)
    // A paused VM can be snapshotted as it is, and stays paused.
    const snap = await mgr.request('POST', `/v1/vms/${id}/snapshots`)
    expect(snap.status).toBe(201)
    expect((await mgr.request('GET', `/v1/vms/${id}`)).body.state).toBe('PAUSED')
    expect((await mgr.request('POST', `/v1/vms/${id}/resume`)).status).toBe(204)
    expect((await exec(id, 'cat /dev/shm/marker; pgrep -x sleep >/dev/null && echo sleeper-alive')).stdout).toBe('in-memory\nsleeper-alive\n')
    // A snapshot of a clone (RAM not in a shared file) resumes too. This clone has secretEnv, so
    // its snapshot holds it: the create gives the same name (snapshot_contains_secrets otherwise).
    expect(snap.body.containsSecrets).toBe(true)
    const grand = await createVm({ snapshotId: snap.body.id, secretEnv: ['CLONE_SECRET=three'] })
    clones.push(grand.id)
    expect(grand.provisionMode).toBe('snapshot')
    expect((await exec(grand.id, 'cat /dev/shm/marker')).stdout).toBe('in-memory\n')
  })

  it('a snapshot outlives its source VM and a manager restart', async () => {
    expect((await mgr.request('DELETE', `/v1/vms/${sourceId}`)).status).toBe(204)
    await mgr.stop()
    await mgr.start()
    expect((await mgr.request('GET', `/v1/snapshots/${snapId}`)).status).toBe(200)
    const vm = await createVm({ snapshotId: snapId })
    clones.push(vm.id)
    expect((await exec(vm.id, 'cat /dev/shm/marker')).stdout).toBe('in-memory\n')
  })

  it('a missing or corrupt snapshot file gives a clear error and leaves nothing behind', async () => {
    const donor = clones[0]!
    const taken = await mgr.request('POST', `/v1/vms/${donor}/snapshots`)
    expect(taken.status).toBe(201)
    const dir = path.join(mgr.storageRoot, 'snapshots', taken.body.id)
    const before = await footprint()

    fs.truncateSync(path.join(dir, 'state.bin'), 1000)
    const corrupt = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [], snapshotId: taken.body.id })
    expect(corrupt.status).toBe(500)
    expect(corrupt.body.code).toBe('vm_boot_failed')
    expect(corrupt.body.message).toMatch(/resume from snapshot failed/)
    expect(await footprint()).toEqual(before)

    fs.rmSync(path.join(dir, 'state.bin'))
    const missing = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [], snapshotId: taken.body.id })
    expect(missing.status).toBe(409)
    expect(missing.body.code).toBe('snapshot_files_missing')
    expect(await footprint()).toEqual(before)
    expect((await mgr.request('DELETE', `/v1/snapshots/${taken.body.id}`)).status).toBe(204)
    expect(fs.existsSync(dir)).toBe(false)
  })

  it('deletes a snapshot once no VM runs on its memory', async () => {
    for (const id of clones.splice(0)) expect((await mgr.request('DELETE', `/v1/vms/${id}`)).status).toBe(204)
    expect((await mgr.request('DELETE', `/v1/snapshots/${snapId}`)).status).toBe(204)
    expect((await mgr.request('GET', `/v1/snapshots/${snapId}`)).status).toBe(404)
    expect(fs.existsSync(path.join(mgr.storageRoot, 'snapshots', snapId))).toBe(false)
  })
})

describe('snapshots of a VM with secretEnv', () => {
  it('hold the secret in memory: a clone, once accepted, reads it from a process the source started', async () => {
    const secret = 'snapshot-held-value-4f7a'
    const source = await createVm({ secretEnv: [`HELD_SECRET=${secret}`] })
    const made = [source.id]
    try {
      // Every exec gets secretEnv in its environment; a background process keeps it after the exec ends.
      await exec(source.id, '(setsid sleep 100000 >/dev/null 2>&1 &); true')
      const snap = await mgr.request('POST', `/v1/vms/${source.id}/snapshots`)
      expect(snap.status).toBe(201)
      expect(snap.body.containsSecrets).toBe(true)

      const refused = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [], snapshotId: snap.body.id })
      expect(refused.status).toBe(400)
      expect(refused.body.code).toBe('snapshot_contains_secrets')

      const clone = await createVm({ snapshotId: snap.body.id, acceptSnapshotSecrets: true })
      made.push(clone.id)
      expect(clone.provisionMode).toBe('snapshot')
      // The clone has no secretEnv of its own, yet the resumed process's environment has the source's value.
      expect((await exec(clone.id, 'echo "[$HELD_SECRET]"')).stdout).toBe('[]\n')
      const leaked = await exec(clone.id, 'for p in $(pgrep -x sleep); do tr "\\0" "\\n" < /proc/$p/environ | grep "^HELD_SECRET="; done')
      console.log(`clone ${clone.id} of a secretEnv VM, /proc/<sleep pid>/environ: ${leaked.stdout.trim()}`)
      expect(leaked.stdout).toContain(`HELD_SECRET=${secret}`)
      expect((await mgr.request('DELETE', `/v1/vms/${clone.id}`)).status).toBe(204)
      made.pop()
      expect((await mgr.request('DELETE', `/v1/snapshots/${snap.body.id}`)).status).toBe(204)
    } finally {
      for (const id of made) await mgr.request('DELETE', `/v1/vms/${id}`)
    }
  })
})
