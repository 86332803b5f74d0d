// Templates: what each one builds (image, shape, setup), how its last build went (each setup
// step's exit code and output), a VM spawned from it in one click, and a form for a new one.
// Files for a template (an archive unpacked before the setup) come from the API, the SDK or the CLI.
import { useState } from 'preact/hooks'
import type { TemplateInfo } from '@run-dat-sheesh/sdk/source'
import { api } from '../api.ts'
import { navigate } from '../ui/router.ts'
import { ago, Empty, ErrorBox } from '../ui/parts.tsx'
import { useAction, useData } from '../ui/use-data.ts'

/** The SDK's type, which is checked against the API's schema. */
type Template = TemplateInfo

const STATUS_CLASS = { building: 'state-paused', ready: 'state-running', failed: 'state-error' } as const

function BuildOutput({ t }: { t: Template }) {
  if (t.setupOutput.length === 0 && !t.error) return null
  return (
    <details>
      <summary>Last build: {t.setupOutput.length} step(s)</summary>
      {t.error && <p class="error">{t.error}</p>}
      <ol class="steps">
        {t.setupOutput.map((s, i) => (
          <li key={i}>
            <code>{s.cmd}</code> → {s.timedOut ? 'timed out' : `exit ${s.exitCode}`} <span class="muted">{(s.durationMs / 1000).toFixed(1)} s</span>
            {s.stdout && <pre aria-label={`stdout of step ${i + 1}`}>{s.stdout}</pre>}
            {s.stderr && <pre aria-label={`stderr of step ${i + 1}`}>{s.stderr}</pre>}
          </li>
        ))}
      </ol>
    </details>
  )
}

function NewTemplate({ onDone }: { onDone: () => void }) {
  const [name, setName] = useState('')
  const [cpu, setCpu] = useState('1')
  const [memMb, setMemMb] = useState('512')
  const [setup, setSetup] = useState('')
  const [internet, setInternet] = useState(false)
  const action = useAction()
  const create = (e: Event) => {
    e.preventDefault()
    const body = { name, cpu: Number(cpu), memMb: Number(memMb), setup: setup.split('\n').map((l) => l.trim()).filter(Boolean), outboundInternet: internet }
    void action.run(() => api.post('/v1/templates', body)).then((ok) => ok && (setName(''), setSetup(''), onDone()))
  }
  return (
    <form class="panel" onSubmit={create} aria-label="New template">
      <h3>New template</h3>
      <label>
        Name <input required value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="py-data" />
      </label>
      <label>
        vCPUs <input type="number" min={1} value={cpu} onInput={(e) => setCpu(e.currentTarget.value)} />
      </label>
      <label>
        Memory (MiB) <input type="number" min={128} value={memMb} onInput={(e) => setMemMb(e.currentTarget.value)} />
      </label>
      <label>
        Setup commands (one per line, run in /workspace as the sandbox user)
        <textarea rows={4} value={setup} onInput={(e) => setSetup(e.currentTarget.value)} placeholder="pip install --user pandas" />
      </label>
      <label>
        <input type="checkbox" checked={internet} onChange={(e) => setInternet(e.currentTarget.checked)} /> Internet during the build
      </label>
      <ErrorBox error={action.error} />
      <button type="submit" disabled={action.busy}>
        Create template
      </button>
    </form>
  )
}

export function TemplatesPage() {
  const templates = useData(() => api.get<Template[]>('/v1/templates'), [], (e) => e.entityType === 'template')
  const action = useAction()
  const spawn = (t: Template) =>
    action.run(async () => {
      const vm = await api.post<{ id: string }>(`/v1/templates/${encodeURIComponent(t.name)}/vms`, {})
      navigate(`/console/vms/${vm.id}`)
    })
  const remove = (t: Template) => confirm(`Delete template ${t.name}? VMs spawned from it keep running.`) && action.run(() => api.del(`/v1/templates/${encodeURIComponent(t.name)}`)).then(templates.reload)
  const rows = templates.value ?? []
  return (
    <>
      <h2>Templates</h2>
      <ErrorBox error={templates.error ?? action.error} />
      {templates.value && rows.length === 0 ? (
        <Empty>No templates yet: a template is built once (image, files, setup commands) and every VM spawned from it starts from that snapshot.</Empty>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Template</th>
              <th>Shape</th>
              <th>Setup</th>
              <th>Built</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map((t) => (
              <tr key={t.name}>
                <td>
                  {t.name} <span class={`badge ${STATUS_CLASS[t.status]}`}>{t.status}</span>
                  <div class="muted">{t.imageId ? `image ${t.imageId.slice(0, 8)}` : 'default image'}{t.hasFiles ? ' · with files' : ''}</div>
                </td>
                <td>
                  {t.cpu} vCPU · {t.memMb} MiB
                </td>
                <td>
                  {t.setup.length} command(s)
                  <BuildOutput t={t} />
                </td>
                <td>
                  {ago(t.builtAt)} <span class="muted">{t.createdBy ?? ''}</span>
                </td>
                <td>
                  <button disabled={!t.snapshotId || action.busy} title={t.snapshotId ? 'Resume a new VM from this template' : 'No good build yet'} onClick={() => spawn(t)}>
                    New VM
                  </button>
                  <button class="danger" onClick={() => remove(t)}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <NewTemplate onDone={templates.reload} />
    </>
  )
}
