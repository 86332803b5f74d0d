import { useEffect, useState } from 'preact/hooks'
import { api, type Activity } from '../api.ts'
import { onActivity } from '../live.ts'
import { ago, bytes, Card, ErrorBox } from '../ui/parts.tsx'
import { useData } from '../ui/use-data.ts'

interface Overview {
  counts: { activeVms: number; runningVms: number; snapshots: number }
  cpu: { usagePct: number | null; capacityCores: number; usedCores: number }
  memory: { usedBytes: number; capacityBytes: number; guestBytes: number }
  storage: { usedBytes: number; capacityBytes: number }
  warmPool: { enabled: boolean; target: number; ready: number }
  seeds: { imageId: string; cpu: number; memMb: number; status: string }[]
}

export function ActivityFeed({ limit }: { limit: number }) {
  const [entries, setEntries] = useState<Activity[]>([])
  useEffect(() => {
    void api.get<Activity[]>(`/v1/admin/activity?limit=${limit}`).then(setEntries)
    return onActivity((e) => setEntries((old) => [e, ...old.filter((o) => o.id !== e.id)].slice(0, limit)))
  }, [limit])
  return (
    <ul class="feed" aria-label="Recent activity">
      {entries.map((e) => (
        <li key={e.id}>
          <span class="type">{e.type}</span> {e.message} <span class="muted">· {e.actor} · {ago(e.createdAt)}</span>
        </li>
      ))}
    </ul>
  )
}

export function Dashboard() {
  const o = useData(() => api.get<Overview>('/v1/admin/overview'), [], (e) => e.entityType === 'vm' || e.entityType === 'snapshot')
  const v = o.value
  return (
    <>
      <h2>Dashboard</h2>
      <ErrorBox error={o.error} />
      {v && (
        <div class="cards">
          <Card title="VMs">
            <strong>{v.counts.runningVms}</strong> running of {v.counts.activeVms}
          </Card>
          <Card title="CPU">
            {v.cpu.usagePct === null ? '—' : `${Math.round(v.cpu.usagePct * 100)} %`} of {v.cpu.capacityCores} cores · {v.cpu.usedCores} vCPUs in VMs
          </Card>
          <Card title="Memory">
            {bytes(v.memory.usedBytes)} of {bytes(v.memory.capacityBytes)} · {bytes(v.memory.guestBytes)} for guests
          </Card>
          <Card title="Disk">
            {bytes(v.storage.usedBytes)} of {bytes(v.storage.capacityBytes)}
          </Card>
          <Card title="Snapshots">{v.counts.snapshots}</Card>
          <Card title="Warm pool and seeds">
            {v.warmPool.enabled ? `${v.warmPool.ready}/${v.warmPool.target} warm` : 'pool off'} · {v.seeds.filter((s) => s.status === 'ready').length} seed(s) ready
          </Card>
        </div>
      )}
      <h3>Live activity</h3>
      <ActivityFeed limit={15} />
    </>
  )
}
