// Snapshots of running VMs: memory, device state and the overlay disk at one point in time,
// taken while the guest is paused for the copy and resumed right after. Clones resume from
// them (vms.ts); the files of a snapshot never change once written.
import crypto from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import type { RecordActivity } from './activity/activity-log.ts'
import type { FastifyBaseLogger } from 'fastify'
import { ApiError, Errors, fromVmmError } from '../errors.ts'
import { VmmError } from '../runtime/vmm/vmm-error.ts'
import { copySparse } from '../runtime/storage/copy.ts'
import type { Paths } from '../runtime/storage/paths.ts'
import type { SnapshotKind, SnapshotRecord, SnapshotsRepo } from '../store/snapshots-repo.ts'
import type { ImageSeedsRepo } from '../store/image-seeds-repo.ts'
import type { TemplatesRepo } from '../store/templates-repo.ts'
import type { VmsRepo } from '../store/vms-repo.ts'
import { imageStamp, type ImageService } from './images.ts'
import type { KeyedLock } from './locks.ts'
import type { RestorePoint, Supervisor } from '../runtime/supervisor/supervisor.ts'
import { assertState } from './vm-lifecycle.ts'
import type { SecretBox } from './secret-env.ts'
import type { VmRecord } from '../store/vms-repo.ts'

export type { SnapshotRecord }
export type SnapshotScope = 'user' | 'internal' | 'all'

const SCOPE_KINDS: Record<SnapshotScope, SnapshotKind[]> = { user: ['user'], internal: ['image_seed', 'template'], all: ['user', 'image_seed', 'template'] }
const SNAPSHOT_ID = /^snap-[0-9a-f-]{36}$/

/** The guest's dirty pages reach the overlay before the copy, so a cold boot from the disk alone finds a clean filesystem. */
const GUEST_SYNC_TIMEOUT_MS = 10_000
/** How long the guest agent needs to notice the host left and go back to polling its port. */
const QUIESCE_MS = 300

export function createSnapshotService(deps: {
  maxUserSnapshots: number
  paths: Paths
  repo: SnapshotsRepo
  vms: VmsRepo
  seedsRepo: ImageSeedsRepo
  templatesRepo: TemplatesRepo
  images: ImageService
  machines: Supervisor
  locks: KeyedLock
  secrets: SecretBox
  activity: RecordActivity
  log: FastifyBaseLogger
}) {
  const { paths, repo, vms, machines, log } = deps
  /** User snapshots being taken now: counted with the stored ones so that concurrent takes cannot pass the quota together. */
  let userInFlight = 0

  async function mustGet(id: string): Promise<SnapshotRecord> {
    if (!SNAPSHOT_ID.test(id)) throw Errors.invalidSnapshotId()
    const snap = await repo.get(id)
    if (!snap) throw Errors.snapshotNotFound(id)
    return snap
  }

  /** Allocated bytes (the files are sparse: their apparent size says little). */
  async function allocated(file: string): Promise<number> {
    try {
      return (await fsp.stat(file)).blocks * 512
    } catch {
      return 0
    }
  }

  /**
   * Names of the secrets whose values the VM's memory may hold: its secretEnv goes into every
   * exec/run's environment, so any process still running has them; and whatever the snapshot
   * it was created from held. Sorted, so that equal sets compare equal.
   */
  function secretNamesOf(vm: VmRecord): string[] {
    const own = Object.keys(deps.secrets.envOf(vm))
    return [...new Set([...own, ...vm.inheritedSecretNames])].sort()
  }

  /**
   * `quiesce` (image seeds): the agent session is closed before the copy point, so clones find
   * their agent polling for a host instead of inside a session with a host that is gone, and
   * connect sooner. Not for user snapshots: it would cut the caller's requests in flight.
   */
  async function take(vmId: string, kind: SnapshotKind, opts: { quiesce?: boolean; createdBy?: string } = {}): Promise<SnapshotRecord> {
    if (kind !== 'user') return takeUnchecked(vmId, kind, opts)
    // An unknown VM is a 404 even at the quota.
    if (!(await vms.get(vmId))) throw Errors.vmNotFound(vmId)
    // Reserved before the first await, so a concurrent take already sees this one.
    userInFlight++
    try {
      if ((await repo.count('user')) + userInFlight > deps.maxUserSnapshots) throw Errors.snapshotQuotaExceeded(deps.maxUserSnapshots)
      return await takeUnchecked(vmId, kind, opts)
    } finally {
      userInFlight--
    }
  }

  async function takeUnchecked(vmId: string, kind: SnapshotKind, opts: { quiesce?: boolean; createdBy?: string }): Promise<SnapshotRecord> {
    return deps.locks.run(vmId, async () => {
      const vm = await vms.get(vmId)
      if (!vm) throw Errors.vmNotFound(vmId)
      assertState(vm, 'snapshot')
      const secretNames = secretNamesOf(vm)
      // Seeds are resumed for every caller without asking: a seed VM is booted without secretEnv
      // (image-seeds.ts), and this keeps it so if that ever changes.
      if (kind === 'image_seed' && secretNames.length) throw Errors.snapshotFailed(`VM ${vmId} holds secrets; an image seed must not`)
      const m = machines.get(vmId)
      if (!m) throw Errors.vmStateConflict(`VM ${vmId} has no running VMM to snapshot`)
      const image = await deps.images.resolveForBoot(vm.imageId)
      const id = `snap-${crypto.randomUUID()}`
      const dir = paths.snapshotDir(id)
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 })
      try {
        if (vm.state === 'RUNNING') {
          await m.agent.call('exec', { cmd: 'sync', timeoutMs: GUEST_SYNC_TIMEOUT_MS }, GUEST_SYNC_TIMEOUT_MS + 2000).catch((err: Error) => {
            log.warn({ vmId, err: err.message }, 'guest sync before snapshot failed; the disk copy is crash-consistent only')
          })
        }
        if (opts.quiesce) {
          m.agent.reset()
          await sleep(QUIESCE_MS)
        }
        const result = await machines.snapshot(vmId, {
          stateFile: paths.snapshotState(id),
          memoryFile: paths.snapshotMemory(id),
          whilePaused: () => copySparse(paths.overlay(vmId), paths.snapshotOverlay(id)),
        })
        const snap: SnapshotRecord = {
          id,
          kind,
          sourceVmId: vmId,
          imageId: vm.imageId,
          imageStamp: await imageStamp(image.files),
          cpu: vm.cpu,
          memMb: vm.memMb,
          memoryInFile: result.memoryInFile,
          ramBytes: result.ramBytes,
          stateBytes: await allocated(paths.snapshotState(id)),
          memoryBytes: await allocated(paths.snapshotMemory(id)),
          diskBytes: await allocated(paths.snapshotOverlay(id)),
          pauseMs: result.pauseMs,
          createdAt: new Date().toISOString(),
          secretNames,
          createdBy: opts.createdBy ?? null,
        }
        await repo.insert(snap)
        log.info({ vmId, snapshotId: id, pauseMs: snap.pauseMs, memoryBytes: snap.memoryBytes }, 'snapshot taken')
        if (kind === 'user') deps.activity({ type: 'snapshot.created', entityType: 'snapshot', entityId: id, message: `Snapshot ${id} of VM ${vmId} taken`, meta: { vmId, pauseMs: snap.pauseMs, containsSecrets: secretNames.length > 0 } })
        return snap
      } catch (err) {
        await fsp.rm(dir, { recursive: true, force: true })
        if (err instanceof ApiError) throw err
        // Its own code: a VMM that overflowed its state stream is a finding, not a transient failure.
        if (err instanceof VmmError && err.kind === 'state_too_large') throw fromVmmError(err)
        throw Errors.snapshotFailed((err as Error).message)
      }
    })
  }

  return {
    get: mustGet,
    take,
    list: (scope: SnapshotScope) => repo.list(SCOPE_KINDS[scope]),

    /** Deletes the record and files; refused while a VM still maps its memory file. */
    async remove(id: string): Promise<void> {
      const snap = await mustGet(id)
      const mapping = await vms.countMappingSnapshot(id)
      if (mapping > 0) throw Errors.snapshotInUse(id, mapping)
      // A template's build goes with the template (DELETE or PUT of it), never from under it.
      if (snap.kind === 'template' && (await deps.templatesRepo.servingSnapshotIds()).has(id)) throw Errors.snapshotServesTemplate(id)
      await repo.remove(id)
      await fsp.rm(paths.snapshotDir(snap.id), { recursive: true, force: true })
      await deps.seedsRepo.forgetSnapshot(id)
      deps.activity({ type: 'snapshot.deleted', entityType: 'snapshot', entityId: id, message: `Snapshot ${id} deleted`, meta: { kind: snap.kind } })
    },

    /**
     * What a VM resumes from. Checked before anything is created for the VM: the files are all
     * there and the image files are the very ones the snapshot was taken on.
     */
    async restorePoint(snap: SnapshotRecord, files: Parameters<typeof imageStamp>[0]): Promise<RestorePoint> {
      const need = [paths.snapshotState(snap.id), paths.snapshotOverlay(snap.id), ...(snap.memoryInFile ? [paths.snapshotMemory(snap.id)] : [])]
      for (const f of need) {
        if (!fs.existsSync(f)) throw Errors.snapshotFilesMissing(snap.id, f.slice(paths.snapshotDir(snap.id).length + 1))
      }
      if ((await imageStamp(files)) !== snap.imageStamp) throw Errors.snapshotImageChanged(snap.id, snap.imageId)
      return { stateFile: paths.snapshotState(snap.id), memoryFile: paths.snapshotMemory(snap.id), memoryInFile: snap.memoryInFile, ramBytes: snap.ramBytes }
    },

    /** Startup: snapshot directories without a record are leftovers of an interrupted snapshot. */
    async reconcile(): Promise<string[]> {
      const removed: string[] = []
      for (const dir of await fsp.readdir(paths.snapshotsRoot).catch(() => [] as string[])) {
        if (SNAPSHOT_ID.test(dir) && (await repo.get(dir))) continue
        await fsp.rm(`${paths.snapshotsRoot}/${dir}`, { recursive: true, force: true })
        removed.push(dir)
      }
      return removed
    },
  }
}
export type SnapshotService = ReturnType<typeof createSnapshotService>
