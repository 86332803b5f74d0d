// GET /v1/admin/overview: what the console's dashboard shows in one answer.
import { hostUsage } from '../../runtime/host/host-usage.ts'
import type { ImageSeedsRepo } from '../../store/image-seeds-repo.ts'
import type { SnapshotsRepo } from '../../store/snapshots-repo.ts'
import type { TemplatesRepo } from '../../store/templates-repo.ts'
import type { VmsRepo } from '../../store/vms-repo.ts'
import type { WarmPool } from '../warm-pool.ts'

export function createOverview(deps: { storageRoot: string; vms: VmsRepo; snapshots: SnapshotsRepo; seeds: ImageSeedsRepo; templates: TemplatesRepo; pool: WarmPool }) {
  return async () => {
    const [vms, snapshots, seeds, pool, host, templates] = await Promise.all([deps.vms.listByPurpose('user'), deps.snapshots.list(['user']), deps.seeds.list(), deps.pool.status(), hostUsage(deps.storageRoot), deps.templates.count()])
    const live = vms.filter((v) => v.state === 'RUNNING' || v.state === 'PAUSED' || v.state === 'STARTING')
    return {
      counts: { activeVms: vms.length, runningVms: vms.filter((v) => v.state === 'RUNNING').length, snapshots: snapshots.length, templates },
      cpu: { ...host.cpu, usedCores: live.reduce((n, v) => n + v.cpu, 0) },
      memory: { ...host.memory, guestBytes: live.reduce((n, v) => n + v.memMb * 1024 * 1024, 0) },
      storage: host.storage,
      warmPool: pool,
      seeds: seeds.map((s) => ({ imageId: s.imageId, cpu: s.cpu, memMb: s.memMb, status: s.status, error: s.error })),
    }
  }
}
export type Overview = ReturnType<typeof createOverview>
