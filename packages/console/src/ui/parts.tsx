// Small pieces every view uses: error and empty states, times, sizes, a state badge.
import type { ComponentChildren } from 'preact'
import { ApiError } from '../api.ts'

export function ErrorBox({ error }: { error: Error | undefined }) {
  if (!error) return null
  return (
    <div class="error" role="alert">
      {error.message}
      {error instanceof ApiError && <code class="code">{error.code}</code>}
    </div>
  )
}

export const Empty = ({ children }: { children: ComponentChildren }) => <p class="empty">{children}</p>

export function ago(iso: string | null | undefined): string {
  if (!iso) return '—'
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000)
  if (s < 60) return `${Math.max(0, s)} s ago`
  if (s < 3600) return `${Math.round(s / 60)} min ago`
  if (s < 86400) return `${Math.round(s / 3600)} h ago`
  return new Date(iso).toLocaleString()
}

/** How long until `iso` ("in 5 min"), or "due" once it has passed. */
export function until(iso: string | null | undefined): string {
  if (!iso) return '—'
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000)
  if (s <= 0) return 'due'
  if (s < 60) return `in ${s} s`
  if (s < 3600) return `in ${Math.round(s / 60)} min`
  if (s < 86400) return `in ${Math.round(s / 3600)} h`
  return new Date(iso).toLocaleString()
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`
}

export const StateBadge = ({ state }: { state: string }) => <span class={`badge state-${state.toLowerCase()}`}>{state}</span>

export const Card = ({ title, children }: { title: string; children: ComponentChildren }) => (
  <section class="card">
    <h3>{title}</h3>
    <div class="card-body">{children}</div>
  </section>
)
