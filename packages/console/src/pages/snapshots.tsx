import { api } from '../api.ts'
import { navigate } from '../ui/router.ts'
import { ago, bytes, Empty, ErrorBox } from '../ui/parts.tsx'
import { useAction, useData } from '../ui/use-data.ts'

interface Snapshot {
  id: string
  kind: string
  createdAt: string
  cpu: number
  memMb: number
  imageId: string
  sourceVmId: string | null
  containsSecrets: boolean
  createdBy: string | null
  sizes: { memoryBytes: number; diskBytes: number }
}

const KIND_LABEL: Record<string, string> = { user_overlay: 'user', image_seed: 'image seed', template: 'template build' }

export function SnapshotsPage() {
  const snaps = useData(() => api.get<Snapshot[]>('/v1/snapshots?scope=all'), [], (e) => e.entityType === 'snapshot')
  const action = useAction()
  const fromSnapshot = (s: Snapshot) =>
    action.run(async () => {
      const vm = await api.post<{ id: string }>('/v1/vms', { cpu: s.cpu, memMb: s.memMb, allowIps: [], snapshotId: s.id, ...(s.containsSecrets ? { acceptSnapshotSecrets: true } : {}) })
      navigate(`/console/vms/${vm.id}`)
    })
  const rows = snaps.value ?? []
  return (
    <>
      <h2>Snapshots</h2>
      <ErrorBox error={snaps.error ?? action.error} />
      {snaps.value && rows.length === 0 ? (
        <Empty>No snapshots yet: take one from a running VM.</Empty>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Snapshot</th>
              <th>Kind</th>
              <th>Shape</th>
              <th>Size</th>
              <th>Taken</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map((s) => (
              <tr key={s.id}>
                <td>
                  <code>{s.id.slice(0, 8)}</code> {s.containsSecrets && <span class="badge" title="Its memory holds secretEnv values">secrets</span>}
                  <div class="muted">of {s.sourceVmId ?? '—'}</div>
                </td>
                <td>{KIND_LABEL[s.kind] ?? s.kind}</td>
                <td>
                  {s.cpu} vCPU · {s.memMb} MiB
                </td>
                <td>{bytes(s.sizes.memoryBytes + s.sizes.diskBytes)}</td>
                <td>
                  {ago(s.createdAt)} <span class="muted">{s.createdBy ?? ''}</span>
                </td>
                <td>
                  {s.kind === 'user_overlay' && (
                    <>
                      <button onClick={() => fromSnapshot(s)}>New VM from it</button>
                      <button class="danger" onClick={() => confirm('Delete this snapshot?') && action.run(() => api.del(`/v1/snapshots/${s.id}`)).then(snaps.reload)}>
                        Delete
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  )
}
