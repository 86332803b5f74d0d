// The activity log live: one EventSource for the whole console, fanned out to the views that
// listen. The browser reconnects on its own and sends Last-Event-ID, so nothing is missed.
import type { Activity } from './api.ts'

type Listener = (e: Activity) => void
const listeners = new Set<Listener>()
let source: EventSource | undefined

export function onActivity(listener: Listener): () => void {
  if (!source) {
    source = new EventSource('/v1/admin/events')
    source.addEventListener('activity', (m) => {
      const e = JSON.parse((m as MessageEvent<string>).data) as Activity
      for (const l of listeners) l(e)
    })
  }
  listeners.add(listener)
  return () => listeners.delete(listener)
}
