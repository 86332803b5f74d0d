import { useState } from 'preact/hooks'
import { api } from '../api.ts'
import { ErrorBox } from '../ui/parts.tsx'
import { useAction } from '../ui/use-data.ts'

export function Login() {
  const [email, setEmail] = useState('')
  const [password, setPassword] = useState('')
  const action = useAction()
  const submit = async (e: Event) => {
    e.preventDefault()
    if (await action.run(() => api.post('/auth/login', { email, password }))) location.assign('/console/')
  }
  return (
    <main class="login">
      <form onSubmit={submit} aria-label="Log in">
        <h1>run-dat-sheesh</h1>
        <label>
          Email
          <input name="email" type="email" autocomplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </label>
        <label>
          Password
          <input name="password" type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        <ErrorBox error={action.error} />
        <button type="submit" disabled={action.busy}>
          {action.busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
    </main>
  )
}
