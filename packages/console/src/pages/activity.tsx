import { useState } from 'preact/hooks'
import { api, type Activity } from '../api.ts'
import { ago, ErrorBox } from '../ui/parts.tsx'
import { useData } from '../ui/use-data.ts'

const PAGE = 50

export function ActivityPage() {
  const [before, setBefore] = useState<string[]>([])
  const cursor = before.at(-1)
  const page = useData(() => api.get<Activity[]>(`/v1/admin/activity?limit=${PAGE}${cursor ? `&before=${cursor}` : ''}`), [cursor], () => cursor === undefined)
  const rows = page.value ?? []
  return (
    <>
      <h2>Activity</h2>
      <ErrorBox error={page.error} />
      <table>
        <thead>
          <tr>
            <th>When</th>
            <th>Type</th>
            <th>What</th>
            <th>Who</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((e) => (
            <tr key={e.id}>
              <td title={e.createdAt}>{ago(e.createdAt)}</td>
              <td>
                <code>{e.type}</code>
              </td>
              <td>{e.message}</td>
              <td>{e.actor}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="pager">
        <button disabled={before.length === 0} onClick={() => setBefore(before.slice(0, -1))}>
          Newer
        </button>
        <button disabled={rows.length < PAGE} onClick={() => setBefore([...before, rows.at(-1)!.id])}>
          Older
        </button>
      </div>
    </>
  )
}
