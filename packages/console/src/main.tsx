// The console: /login/ for the login form, /console/… for the app, which needs a session (the
// manager redirects a browser without one to /login/ before this runs).
import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { api, setCsrfToken, type Me } from './api.ts'
import { ActivityPage } from './pages/activity.tsx'
import { ApiKeysPage } from './pages/api-keys.tsx'
import { Dashboard } from './pages/dashboard.tsx'
import { ImagesPage } from './pages/images.tsx'
import { Login } from './pages/login.tsx'
import { SnapshotsPage } from './pages/snapshots.tsx'
import { TemplatesPage } from './pages/templates.tsx'
import { VmDetail } from './pages/vm-detail.tsx'
import { VmsPage } from './pages/vms.tsx'
import { WebhooksPage } from './pages/webhooks.tsx'
import { linkProps, usePath } from './ui/router.ts'

const NAV = [
  ['/console/', 'Dashboard'],
  ['/console/vms', 'Virtual machines'],
  ['/console/templates', 'Templates'],
  ['/console/snapshots', 'Snapshots'],
  ['/console/images', 'Images'],
  ['/console/api-keys', 'API keys'],
  ['/console/webhooks', 'Webhooks'],
  ['/console/activity', 'Activity'],
] as const

function Page({ path }: { path: string }) {
  const vm = /^\/console\/vms\/([^/]+)$/.exec(path)
  if (vm) return <VmDetail id={decodeURIComponent(vm[1]!)} />
  switch (path.replace(/\/$/, '')) {
    case '/console':
      return <Dashboard />
    case '/console/vms':
      return <VmsPage />
    case '/console/templates':
      return <TemplatesPage />
    case '/console/snapshots':
      return <SnapshotsPage />
    case '/console/images':
      return <ImagesPage />
    case '/console/api-keys':
      return <ApiKeysPage />
    case '/console/webhooks':
      return <WebhooksPage />
    case '/console/activity':
      return <ActivityPage />
    default:
      return <p>No such page.</p>
  }
}

function Console() {
  const path = usePath()
  const [me, setMe] = useState<Me | undefined>(undefined)
  useEffect(() => {
    api.get<Me>('/auth/me').then(
      (m) => {
        setCsrfToken(m.csrfToken)
        setMe(m)
      },
      () => location.assign('/login/'),
    )
  }, [])
  if (!me) return <p class="muted">Loading…</p>
  const logout = async () => {
    await api.post('/auth/logout').catch(() => {})
    location.assign('/login/')
  }
  return (
    <div class="shell">
      <nav class="sidebar" aria-label="Main">
        <div class="brand">run-dat-sheesh</div>
        {NAV.map(([href, label]) => (
          <a key={href} {...linkProps(href)} class={(href === '/console/' ? path === href : path.startsWith(href)) ? 'active' : ''}>
            {label}
          </a>
        ))}
        <a href="/docs/" target="_blank" rel="noopener">
          API docs
        </a>
        <div class="me">
          {me.email}
          <button onClick={logout}>Log out</button>
        </div>
      </nav>
      <main class="content">
        <Page path={path} />
      </main>
    </div>
  )
}

const root = document.getElementById('app')!
render(location.pathname.startsWith('/login') ? <Login /> : <Console />, root)
