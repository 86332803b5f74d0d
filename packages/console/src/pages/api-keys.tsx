import { useState } from 'preact/hooks'
import { api } from '../api.ts'
import { ago, Empty, ErrorBox } from '../ui/parts.tsx'
import { useAction, useData } from '../ui/use-data.ts'

interface ApiKey {
  id: string
  name: string
  prefix: string
  createdAt: string
  expiresAt: string | null
  revokedAt: string | null
  lastUsedAt: string | null
}

export function ApiKeysPage() {
  const keys = useData(() => api.get<ApiKey[]>('/v1/admin/api-keys'), [])
  const [name, setName] = useState('')
  const [expiresAt, setExpiresAt] = useState('')
  const [e2bShape, setE2bShape] = useState(false)
  const [minted, setMinted] = useState<string | undefined>(undefined)
  const action = useAction()
  const mint = (e: Event) => {
    e.preventDefault()
    void action
      .run(async () => setMinted((await api.post<{ apiKey: string }>('/v1/admin/api-keys', { name, ...(expiresAt ? { expiresAt: new Date(expiresAt).toISOString() } : {}), ...(e2bShape ? { format: 'e2b' } : {}) })).apiKey))
      .then((ok) => ok && (setName(''), keys.reload()))
  }
  return (
    <>
      <h2>API keys</h2>
      <form class="panel" onSubmit={mint} aria-label="Mint key">
        <label>
          Name <input name="name" required value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="n8n production" />
        </label>
        <label>
          Expires (optional) <input name="expiresAt" type="datetime-local" value={expiresAt} onInput={(e) => setExpiresAt(e.currentTarget.value)} />
        </label>
        <label title="e2b_ and 40 hex digits, for E2B's SDKs (E2B_API_KEY)">
          <input name="e2bShape" type="checkbox" checked={e2bShape} onChange={(e) => setE2bShape(e.currentTarget.checked)} /> E2B-shaped
        </label>
        <button type="submit" disabled={action.busy}>
          Create key
        </button>
      </form>
      {minted && (
        <div class="ok" role="status">
          Copy this key now, it is not shown again: <code class="secret">{minted}</code> <button onClick={() => setMinted(undefined)}>Done</button>
        </div>
      )}
      <ErrorBox error={keys.error ?? action.error} />
      {keys.value && keys.value.length === 0 ? (
        <Empty>No keys yet.</Empty>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Prefix</th>
              <th>Created</th>
              <th>Last used</th>
              <th>Expires</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(keys.value ?? []).map((k) => (
              <tr key={k.id} class={k.revokedAt ? 'revoked' : ''}>
                <td>{k.name}</td>
                <td>
                  <code>{k.prefix}</code>
                </td>
                <td>{ago(k.createdAt)}</td>
                <td>{ago(k.lastUsedAt)}</td>
                <td>{k.expiresAt ? new Date(k.expiresAt).toLocaleString() : 'never'}</td>
                <td>
                  {k.revokedAt ? (
                    <span class="muted">revoked {ago(k.revokedAt)}</span>
                  ) : (
                    <button class="danger" onClick={() => confirm(`Revoke ${k.name}? It stops working at once.`) && action.run(() => api.post(`/v1/admin/api-keys/${k.id}/revoke`)).then(keys.reload)}>
                      Revoke
                    </button>
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
