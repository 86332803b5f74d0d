import { useState } from 'preact/hooks'
import { api } from '../api.ts'
import { ago, Empty, ErrorBox } from '../ui/parts.tsx'
import { useAction, useData } from '../ui/use-data.ts'

interface Webhook {
  id: string
  name: string
  url: string
  enabled: boolean
  eventTypes: string[]
  createdAt: string
}
interface Delivery {
  id: string
  eventType: string
  status: string
  attempts: number
  lastStatus: number | null
  lastError: string | null
  createdAt: string
}

const EVENT_TYPES = ['vm.created', 'vm.started', 'vm.stopped', 'vm.paused', 'vm.resumed', 'vm.failed', 'vm.deleted', 'vm.network_updated', 'exec.command', 'runTs.executed', 'runJs.executed', 'snapshot.created', 'snapshot.deleted', 'image.created', 'image.deleted', 'apikey.created', 'apikey.revoked', 'auth.login', 'auth.login_failed']

function Deliveries({ hook }: { hook: Webhook }) {
  const list = useData(() => api.get<Delivery[]>(`/v1/admin/webhooks/${hook.id}/deliveries?limit=20`), [hook.id])
  return (
    <div class="deliveries">
      <button onClick={list.reload}>Refresh</button>
      <table aria-label={`Deliveries of ${hook.name}`}>
        <tbody>
          {(list.value ?? []).map((d) => (
            <tr key={d.id}>
              <td>{ago(d.createdAt)}</td>
              <td>
                <code>{d.eventType}</code>
              </td>
              <td class={`delivery-${d.status}`}>{d.status}</td>
              <td>
                {d.attempts} attempt(s){d.lastStatus ? ` · HTTP ${d.lastStatus}` : ''}
                {d.lastError ? ` · ${d.lastError}` : ''}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

export function WebhooksPage() {
  const hooks = useData(() => api.get<Webhook[]>('/v1/admin/webhooks'), [])
  const [form, setForm] = useState({ name: '', url: '', types: new Set(['vm.created', 'vm.deleted', 'vm.failed']) })
  const [secret, setSecret] = useState<string | undefined>(undefined)
  const [open, setOpen] = useState<string | undefined>(undefined)
  const action = useAction()
  const create = (e: Event) => {
    e.preventDefault()
    void action
      .run(async () => setSecret((await api.post<{ secret: string }>('/v1/admin/webhooks', { name: form.name, url: form.url, eventTypes: [...form.types] })).secret))
      .then((ok) => ok && hooks.reload())
  }
  const toggle = (t: string) => {
    const types = new Set(form.types)
    if (types.has(t)) types.delete(t)
    else types.add(t)
    setForm({ ...form, types })
  }
  return (
    <>
      <h2>Webhooks</h2>
      <form class="panel" onSubmit={create} aria-label="New webhook">
        <label>
          Name <input name="name" required value={form.name} onInput={(e) => setForm({ ...form, name: e.currentTarget.value })} />
        </label>
        <label>
          URL <input name="url" type="url" required value={form.url} onInput={(e) => setForm({ ...form, url: e.currentTarget.value })} placeholder="https://n8n.example.com/webhook/…" />
        </label>
        <fieldset>
          <legend>Events</legend>
          {EVENT_TYPES.map((t) => (
            <label class="check" key={t}>
              <input type="checkbox" checked={form.types.has(t)} onChange={() => toggle(t)} /> {t}
            </label>
          ))}
        </fieldset>
        <button type="submit" disabled={action.busy}>
          Add webhook
        </button>
      </form>
      {secret && (
        <div class="ok" role="status">
          Signing secret (shown once): <code class="secret">{secret}</code> <button onClick={() => setSecret(undefined)}>Done</button>
        </div>
      )}
      <ErrorBox error={hooks.error ?? action.error} />
      {hooks.value && hooks.value.length === 0 ? (
        <Empty>No webhooks yet.</Empty>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>URL</th>
              <th>Events</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(hooks.value ?? []).map((h) => (
              <>
                <tr key={h.id}>
                  <td>
                    {h.name} {!h.enabled && <span class="badge">off</span>}
                  </td>
                  <td>
                    <code>{h.url}</code>
                  </td>
                  <td>{h.eventTypes.join(', ')}</td>
                  <td>
                    <button onClick={() => action.run(() => api.post(`/v1/admin/webhooks/${h.id}/test`)).then(() => setOpen(h.id))}>Send test</button>
                    <button onClick={() => action.run(() => api.patch(`/v1/admin/webhooks/${h.id}`, { enabled: !h.enabled })).then(hooks.reload)}>{h.enabled ? 'Disable' : 'Enable'}</button>
                    <button onClick={() => setOpen(open === h.id ? undefined : h.id)}>Deliveries</button>
                    <button class="danger" onClick={() => confirm(`Delete webhook ${h.name}?`) && action.run(() => api.del(`/v1/admin/webhooks/${h.id}`)).then(hooks.reload)}>
                      Delete
                    </button>
                  </td>
                </tr>
                {open === h.id && (
                  <tr key={`${h.id}-d`}>
                    <td colSpan={4}>
                      <Deliveries hook={h} />
                    </td>
                  </tr>
                )}
              </>
            ))}
          </tbody>
        </table>
      )}
    </>
  )
}
