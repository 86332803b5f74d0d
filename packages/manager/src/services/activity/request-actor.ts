// Who caused what the services are doing now: the authenticated caller of the current request,
// carried by the request's async context so that every service can name it in the activity log
// without each verb taking it as a parameter. Work that no request caused (health checks, the
// warm pool, expiry) runs outside any request and is the `system`'s.
import { AsyncLocalStorage } from 'node:async_hooks'

export const SYSTEM_ACTOR = 'system'

const context = new AsyncLocalStorage<string>()

/** Runs `work` (a request's handler, from the API's auth hook) as `label`, and everything it starts. */
export const asActor = <T>(label: string, work: () => T): T => context.run(label, work)

/** Runs `work` as the system, e.g. a background job started from within a request. */
export const asSystem = <T>(work: () => T): T => context.run(SYSTEM_ACTOR, work)

export const currentActor = (): string => context.getStore() ?? SYSTEM_ACTOR
