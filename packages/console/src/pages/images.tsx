import { useState } from 'preact/hooks'
import { api } from '../api.ts'
import { ago, bytes, ErrorBox } from '../ui/parts.tsx'
import { useAction, useData } from '../ui/use-data.ts'

interface Image {
  id: string
  name: string
  description: string
  createdAt: string
  isDefault: boolean
  hasKernel: boolean
  hasInitrd: boolean
  hasRootfs: boolean
  baseRootfsBytes: number | null
  seeds: { cpu: number; memMb: number; status: string; error: string | null }[]
}

function Upload({ image, onDone }: { image: Image; onDone: () => void }) {
  const [part, setPart] = useState('rootfs')
  const [progress, setProgress] = useState<number | undefined>(undefined)
  const action = useAction()
  const send = (e: Event) => {
    e.preventDefault()
    const file = (e.currentTarget as HTMLFormElement).querySelector<HTMLInputElement>('input[type=file]')!.files?.[0]
    if (!file) return
    // Leaving the page would cut a long upload: ask first.
    const guard = (ev: BeforeUnloadEvent) => ev.preventDefault()
    addEventListener('beforeunload', guard)
    void action
      .run(() => api.uploadWithProgress('PUT', `/v1/images/${image.id}/${part}`, file, setProgress))
      .then((ok) => ok && onDone())
      .finally(() => {
        removeEventListener('beforeunload', guard)
        setProgress(undefined)
      })
  }
  return (
    <form onSubmit={send} class="inline">
      <select aria-label="Part" value={part} onChange={(e) => setPart(e.currentTarget.value)}>
        <option value="kernel">kernel</option>
        <option value="initrd">initrd</option>
        <option value="rootfs">rootfs</option>
        <option value="bundle">bundle (zip / tar.gz)</option>
      </select>
      <input type="file" aria-label="File" />
      <button type="submit" disabled={action.busy}>
        Upload
      </button>
      {progress !== undefined && <progress value={progress} max={1} />}
      <ErrorBox error={action.error} />
    </form>
  )
}

export function ImagesPage() {
  const images = useData(() => api.get<Image[]>('/v1/images'), [], (e) => e.entityType === 'image')
  const [name, setName] = useState('')
  const [description, setDescription] = useState('')
  const action = useAction()
  const create = (e: Event) => {
    e.preventDefault()
    void action.run(() => api.post('/v1/images', { name, description })).then((ok) => ok && (setName(''), setDescription(''), images.reload()))
  }
  return (
    <>
      <h2>Images</h2>
      <ErrorBox error={images.error ?? action.error} />
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Files</th>
            <th>Seeds</th>
            <th>Created</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(images.value ?? []).map((i) => (
            <tr key={i.id}>
              <td>
                {i.name} {i.isDefault && <span class="badge">default</span>}
                <div class="muted">{i.description}</div>
              </td>
              <td>
                {[i.hasKernel && 'kernel', i.hasInitrd && 'initrd', i.hasRootfs && `rootfs ${bytes(i.baseRootfsBytes)}`].filter(Boolean).join(' · ') || 'none yet'}
              </td>
              <td>{i.seeds.map((s) => `${s.cpu}/${s.memMb}: ${s.status}`).join(', ') || '—'}</td>
              <td>{ago(i.createdAt)}</td>
              <td>
                {!i.isDefault && <button onClick={() => action.run(() => api.post(`/v1/images/${i.id}/set-default`)).then(images.reload)}>Make default</button>}
                <button class="danger" onClick={() => confirm(`Delete image ${i.name}?`) && action.run(() => api.del(`/v1/images/${i.id}`)).then(images.reload)}>
                  Delete
                </button>
                <Upload image={i} onDone={images.reload} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form class="panel" onSubmit={create} aria-label="New image">
        <h3>New image</h3>
        <label>
          Name <input required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Description <input required value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={action.busy}>
          Create
        </button>
      </form>
    </>
  )
}
