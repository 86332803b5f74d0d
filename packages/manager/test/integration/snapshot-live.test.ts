// A snapshot of a running clone (a VM resumed from the image seed: its RAM is a private mapping,
// so it is streamed). By default (SNAPSHOT_LIVE unset) it is taken live, under TCG as here too:
// the guest runs while its RAM is sent and is stopped only for the last pages, the device state
// and the disk copy. The guest runs on afterwards, and the snapshot must be one instant of all of
// it: a writer in the guest appends a counter to a memory file and then to a disk file (synced)
// as fast as it can, also while the snapshot is taken, and a VM restored from it must find the
// disk exactly where its memory says it was — read past the guest's page cache, so a disk copied
// before or after that instant shows a gap or a repeat. The restored VM's exec keeps the sandbox
// (uid 1000, no_new_privs, a cgroup of its own) and sees nothing of the writer's env. And no
// write is lost: a guest program rewrites 8192 pages of its memory round robin, without a break,
// while the save runs, and in the restored VM every page holds the value its counter says
// (PAGE_WRITER) — QEMU 7.2's TCG loses exactly such writes in a live save unless the guest RAM
// is sized around its bug (runtime/vmm/qemu/guest-ram.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ManagerClient } from '../harness/manager-process.ts'
import { sharedManager } from '../harness/shared-manager.ts'
import { COUNTER_WRITER, countedLines } from '../harness/counter-writer.ts'
import { PAGE_VERDICT, startPageWriter } from '../harness/page-writer.ts'

let mgr: ManagerClient
const made: string[] = []
const snaps: string[] = []

async function createVm(body: Record<string, unknown> = {}): Promise<{ id: string; provisionMode: string }> {
  // The shared manager's seed shape: the VM resumes from the seed, so its RAM is not a file of its own.
  const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [], ...body })
  if (r.status !== 201) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}\n${mgr.output.slice(-3000)}`)
  made.push(r.body.id)
  return r.body
}

async function run(vmId: string, cmd: string): Promise<string> {
  const r = await mgr.exec(vmId, cmd)
  if (r.exitCode !== 0) throw new Error(`exec failed (${r.exitCode}): ${cmd}\n${r.stderr}`)
  return r.stdout
}

/** Stops the writer and reads both logs; the disk one with O_DIRECT, from the disk itself. */
async function logsOf(vmId: string): Promise<{ mem: number; disk: number }> {
  await run(vmId, 'touch /dev/shm/stop; for i in $(seq 300); do [ -e /dev/shm/stopped ] && exit 0; sleep 0.1; done; exit 1')
  const mem = countedLines(await run(vmId, 'cat /dev/shm/mem.log'))
  const disk = countedLines(await run(vmId, 'dd if=/workspace/disk.log iflag=direct bs=1M status=none'))
  return { mem, disk }
}

beforeAll(async () => {
  mgr = await sharedManager()
}, 120_000)

afterAll(async () => {
  for (const id of made) await mgr.request('DELETE', `/v1/vms/${id}`)
  for (const id of snaps) await mgr.request('DELETE', `/v1/snapshots/${id}`)
})

describe('live snapshot of a running clone', () => {
  it('is one instant of memory and disk while the guest writes both, and the guest runs on', async () => {
    const source = await createVm()
    expect(source.provisionMode).toBe('snapshot')
    await run(source.id, `cat > /workspace/writer.sh <<'EOF'\n${COUNTER_WRITER}\nEOF\n(WRITER_SECRET=held setsid sh /workspace/writer.sh </dev/null >/dev/null 2>&1 &); true`)
    await run(source.id, 'for i in $(seq 300); do [ "$(wc -l < /dev/shm/mem.log 2>/dev/null || echo 0)" -ge 5 ] && exit 0; sleep 0.1; done; exit 1')
    await run(source.id, 'echo just-before > /workspace/before; echo just-before > /dev/shm/before')

    const snap = await mgr.request('POST', `/v1/vms/${source.id}/snapshots`)
    expect(snap.status).toBe(201)
    snaps.push(snap.body.id)
    console.log(`live snapshot of a clone: paused ${snap.body.pauseMs} ms, state ${snap.body.sizes.stateBytes} bytes`)
    expect(snap.body.pauseMs).toBeGreaterThan(0)

    // The source went on: its writer is still counting after the snapshot.
    const atSnapshot = Number(await run(source.id, 'wc -l < /dev/shm/mem.log'))
    await run(source.id, `for i in $(seq 300); do [ "$(wc -l < /dev/shm/mem.log)" -gt ${atSnapshot} ] && exit 0; sleep 0.1; done; exit 1`)
    expect((await mgr.request('GET', `/v1/vms/${source.id}`)).body.state).toBe('RUNNING')

    const restored = await createVm({ snapshotId: snap.body.id })
    expect(restored.provisionMode).toBe('snapshot')
    expect(await run(restored.id, 'cat /workspace/before /dev/shm/before')).toBe('just-before\njust-before\n')
    // The writer resumed with the restored memory and went on appending to the restored disk: a disk
    // behind that memory leaves a gap (or unwritten blocks), one ahead of it a repeat.
    const { mem, disk } = await logsOf(restored.id)
    expect(mem).toBeGreaterThanOrEqual(5)
    expect(mem - disk).toBeGreaterThanOrEqual(0)
    expect(mem - disk).toBeLessThanOrEqual(1)

    // The source's own disk and memory agree too (the live phase changed nothing under it).
    const own = await logsOf(source.id)
    expect(own.mem - own.disk).toBeGreaterThanOrEqual(0)
    expect(own.mem - own.disk).toBeLessThanOrEqual(1)

    // The sandbox of an exec in the restored VM is what it always is, and nothing of the writer carries in.
    const sandbox = await run(restored.id, 'id -u; id -g; grep NoNewPrivs /proc/self/status; cat /proc/self/cgroup; echo "[$WRITER_SECRET]"')
    const [uid, gid, nnp, cgroup, env] = sandbox.trim().split('\n')
    expect([uid, gid]).toEqual(['1000', '1000'])
    expect(nnp).toMatch(/^NoNewPrivs:\s+1$/)
    expect(cgroup).toMatch(/^0::\/rds\/exec-[^/]+$/)
    expect(env).toBe('[]')
  })

  it('loses no write a guest program makes while the save runs', async () => {
    const source = await createVm()
    await run(source.id, startPageWriter())
    const snap = await mgr.request('POST', `/v1/vms/${source.id}/snapshots`)
    expect(snap.status).toBe(201)
    snaps.push(snap.body.id)
    console.log(`snapshot of a clone rewriting its pages: paused ${snap.body.pauseMs} ms, state ${snap.body.sizes.stateBytes} bytes`)
    const restored = await createVm({ snapshotId: snap.body.id })
    const pages = JSON.parse(await run(restored.id, PAGE_VERDICT)) as { writes: number; pages: number; stale: number; first: number }
    console.log(`pages after the restore: ${JSON.stringify(pages)}`)
    // The writer went round its pages many times, and every page holds its last value.
    expect(pages.writes).toBeGreaterThan(10 * pages.pages)
    expect(pages).toMatchObject({ stale: 0, first: -1 })
  })
})
