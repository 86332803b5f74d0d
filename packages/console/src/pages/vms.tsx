import { useState } from 'preact/hooks'
import { api, type Vm } from '../api.ts'
import { linkProps, navigate } from '../ui/router.ts'
import { ago, Empty, ErrorBox, StateBadge, until } from '../ui/parts.tsx'
import { useAction, useData } from '../ui/use-data.ts'

interface Image {
  id: string
  name: string
  isDefault: boolean
}

const lines = (text: string) => text.split('\n').map((l) => l.trim()).filter(Boolean)
/** `key=value` lines as labels (a line without `=` is a key with an empty value). */
const labelsOf = (text: string) => Object.fromEntries(lines(text).map((l) => [l.split('=')[0]!.trim(), l.includes('=') ? l.slice(l.indexOf('=') + 1).trim() : '']))

function CreateVm({ onDone }: { onDone: () => void }) {
  const images = useData(() => api.get<Image[]>('/v1/images'), [])
  const [form, setForm] = useState({ cpu: '1', memMb: '256', imageId: '', allowIps: '', outboundInternet: false, snapshotId: '', secretEnv: '', peerLinks: '', ttlSeconds: '', onExpire: 'delete', labels: '' })
  const set = (k: keyof typeof form) => (e: Event) => setForm({ ...form, [k]: (e.currentTarget as HTMLInputElement).type === 'checkbox' ? (e.currentTarget as HTMLInputElement).checked : (e.currentTarget as HTMLInputElement).value })
  const action = useAction()
  const submit = async (e: Event) => {
    e.preventDefault()
    const body = {
      cpu: Number(form.cpu),
      memMb: Number(form.memMb),
      allowIps: form.allowIps.split(',').map((s) => s.trim()).filter(Boolean),
      outboundInternet: form.outboundInternet,
      ...(form.imageId ? { imageId: form.imageId } : {}),
      ...(form.snapshotId.trim() ? { snapshotId: form.snapshotId.trim() } : {}),
      ...(lines(form.secretEnv).length ? { secretEnv: lines(form.secretEnv) } : {}),
      ...(lines(form.peerLinks).length ? { peerLinks: lines(form.peerLinks).map((l) => ({ alias: l.split('=')[0]!.trim(), vmId: (l.split('=')[1] ?? '').trim() })) } : {}),
      ...(form.ttlSeconds.trim() ? { ttlSeconds: Number(form.ttlSeconds), onExpire: form.onExpire } : {}),
      ...(lines(form.labels).length ? { labels: labelsOf(form.labels) } : {}),
    }
    let created: Vm | undefined
    if (await action.run(async () => (created = await api.post<Vm>('/v1/vms', body)))) {
      onDone()
      navigate(`/console/vms/${created!.id}`)
    }
  }
  return (
    <form class="panel" onSubmit={submit} aria-label="Create VM">
      <h3>New VM</h3>
      <div class="row">
        <label>
          vCPUs <input name="cpu" type="number" min="1" value={form.cpu} onInput={set('cpu')} />
        </label>
        <label>
          Memory (MiB) <input name="memMb" type="number" min="128" step="64" value={form.memMb} onInput={set('memMb')} />
        </label>
        <label>
          Image
          <select name="imageId" value={form.imageId} onChange={set('imageId')}>
            <option value="">Default image</option>
            {(images.value ?? []).map((i) => (
              <option value={i.id} key={i.id}>
                {i.name}
                {i.isDefault ? ' (default)' : ''}
              </option>
            ))}
          </select>
        </label>
      </div>
      <label>
        Allowed IPs (comma-separated, empty = none) <input name="allowIps" value={form.allowIps} onInput={set('allowIps')} placeholder="203.0.113.7, 198.51.100.0/24" />
      </label>
      <label class="check">
        <input name="outboundInternet" type="checkbox" checked={form.outboundInternet} onChange={set('outboundInternet')} /> Outbound internet
      </label>
      <label>
        From snapshot (id, optional) <input name="snapshotId" value={form.snapshotId} onInput={set('snapshotId')} />
      </label>
      <div class="row">
        <label>
          Expires after (seconds, empty = the manager's default) <input name="ttlSeconds" type="number" min="1" value={form.ttlSeconds} onInput={set('ttlSeconds')} />
        </label>
        <label>
          Then
          <select name="onExpire" value={form.onExpire} onChange={set('onExpire')}>
            <option value="delete">delete it</option>
            <option value="pause">pause it</option>
          </select>
        </label>
      </div>
      <label>
        Labels (one key=value per line)
        <textarea name="labels" rows={2} value={form.labels} onInput={set('labels')} />
      </label>
      <label>
        Secret env (one KEY=value per line; never shown again)
        <textarea name="secretEnv" rows={2} value={form.secretEnv} onInput={set('secretEnv')} />
      </label>
      <label>
        Peer links (one alias=providerVmId per line)
        <textarea name="peerLinks" rows={2} value={form.peerLinks} onInput={set('peerLinks')} />
      </label>
      <ErrorBox error={action.error} />
      <button type="submit" disabled={action.busy}>
        {action.busy ? 'Creating…' : 'Create VM'}
      </button>
    </form>
  )
}

export function VmActions({ vm, onDone }: { vm: Vm; onDone: () => void }) {
  const action = useAction()
  const verb = (name: string) => () => action.run(() => api.post(`/v1/vms/${vm.id}/${name}`)).then(onDone)
  const remove = () => confirm(`Delete VM ${vm.id}? Its disk and everything on it go.`) && action.run(() => api.del(`/v1/vms/${vm.id}`)).then(onDone)
  return (
    <span class="actions">
      {(vm.state === 'STOPPED' || vm.state === 'ERROR') && <button onClick={verb('start')}>Start</button>}
      {vm.state === 'RUNNING' && <button onClick={verb('pause')}>Pause</button>}
      {vm.state === 'PAUSED' && <button onClick={verb('resume')}>Resume</button>}
      {(vm.state === 'RUNNING' || vm.state === 'PAUSED' || vm.state === 'ERROR') && <button onClick={verb('stop')}>Stop</button>}
      {(vm.state === 'RUNNING' || vm.state === 'PAUSED') && <button onClick={verb('snapshots')}>Snapshot</button>}
      {vm.expiresAt && (
        <button title="Expire one hour from now" onClick={() => action.run(() => api.post(`/v1/vms/${vm.id}/extend`, { ttlSeconds: 3600 })).then(onDone)}>
          +1 h
        </button>
      )}
      <button class="danger" onClick={remove}>
        Delete
      </button>
      {action.busy && <span class="muted"> working…</span>}
      <ErrorBox error={action.error} />
    </span>
  )
}

export function VmsPage() {
  const vms = useData(() => api.get<Vm[]>('/v1/vms'), [], (e) => e.entityType === 'vm')
  const [filter, setFilter] = useState('')
  const [creating, setCreating] = useState(false)
  const labelText = (v: Vm) => Object.entries(v.labels ?? {}).map(([k, val]) => `${k}=${val}`).join(' ')
  const shown = (vms.value ?? []).filter((v) => `${v.id} ${v.state} ${v.guestIp ?? ''} ${v.createdBy ?? ''} ${labelText(v)}`.toLowerCase().includes(filter.toLowerCase()))
  return (
    <>
      <h2>Virtual machines</h2>
      <div class="toolbar">
        <input type="search" aria-label="Search VMs" placeholder="Search id, state, address, label" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
        <button onClick={() => setCreating(!creating)}>{creating ? 'Cancel' : 'New VM'}</button>
      </div>
      {creating && <CreateVm onDone={() => (setCreating(false), vms.reload())} />}
      <ErrorBox error={vms.error} />
      {vms.value && shown.length === 0 ? (
        <Empty>No VMs{filter ? ' match' : ' yet'}.</Empty>
      ) : (
        <table>
          <thead>
            <tr>
              <th>VM</th>
              <th>State</th>
              <th>Shape</th>
              <th>Address</th>
              <th>Labels</th>
              <th>Expires</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {shown.map((vm) => (
              <tr key={vm.id}>
                <td>
                  <a {...linkProps(`/console/vms/${vm.id}`)}>{vm.id.slice(0, 8)}</a>
                </td>
                <td>
                  <StateBadge state={vm.state} />
                </td>
                <td>
                  {vm.cpu} vCPU · {vm.memMb} MiB
                </td>
                <td>{vm.guestIp ?? '—'}</td>
                <td>
                  {Object.entries(vm.labels ?? {}).map(([k, v]) => (
                    <span class="label" key={k}>
                      {k}={v}
                    </span>
                  ))}
                </td>
                <td title={vm.expiresAt ?? 'no expiry'}>
                  {vm.expiresAt ? `${until(vm.expiresAt)} (${vm.onExpire})` : '—'}
                </td>
                <td title={vm.createdAt}>
                  {ago(vm.createdAt)} <span class="muted">{vm.createdBy ?? ''}</span>
                </td>
                <td>
                  <VmActions vm={vm} onDone={vms.reload} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  )
}
