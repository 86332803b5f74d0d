// Loading a resource for a view: its value, its error (an ApiError with the API's sentence), and
// a reload; reloads again when a matching activity entry arrives, so views stay current.
import { useCallback, useEffect, useState } from 'preact/hooks'
import type { Activity } from '../api.ts'
import { onActivity } from '../live.ts'

export function useData<T>(load: () => Promise<T>, deps: unknown[], refreshOn?: (e: Activity) => boolean) {
  const [value, setValue] = useState<T | undefined>(undefined)
  const [error, setError] = useState<Error | undefined>(undefined)
  const reload = useCallback(() => {
    load().then(
      (v) => {
        setValue(v)
        setError(undefined)
      },
      (e: Error) => setError(e),
    )
  }, deps)
  useEffect(reload, [reload])
  useEffect(() => (refreshOn ? onActivity((e) => refreshOn(e) && reload()) : undefined), [reload])
  return { value, error, reload }
}

/** Runs an action, keeping its error for display and a busy flag for the button that started it. */
export function useAction() {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<Error | undefined>(undefined)
  const run = async (action: () => Promise<unknown>): Promise<boolean> => {
    setBusy(true)
    setError(undefined)
    try {
      await action()
      return true
    } catch (e) {
      setError(e as Error)
      return false
    } finally {
      setBusy(false)
    }
  }
  return { busy, error, run, clear: () => setError(undefined) }
}
