// Every translation between E2B's control-plane fields and ours, one named function each:
// `timeout` is the VM's TTL (setTimeout and connect extend it), `autoPause` its expiry action,
// `metadata` its labels, `templateID` a template of ours or an image (docs/e2b.md).
import type { E2bSandbox } from '../../services/e2b/sandboxes.ts'
import { Errors } from '../../errors.ts'

/** What an SDK asks for when the caller names no template. */
export const E2B_DEFAULT_TEMPLATE = 'base'
/** `@e2b/code-interpreter`'s default template: our default image has python3, and the manager serves port 49999. */
export const E2B_CODE_INTERPRETER_TEMPLATE = 'code-interpreter-v1'
/** E2B's default sandbox lifetime when a create names none (seconds). */
export const E2B_DEFAULT_TIMEOUT_SECONDS = 15
/** E2B caps a sandbox's life at 24 h on its Pro tier; we refuse longer the same way. */
export const E2B_MAX_TIMEOUT_SECONDS = 24 * 60 * 60
/** envd's features we serve (docs/e2b.md): 0.5.7 adds octet-stream uploads, 0.5.2 closeStdin. */
export const ENVD_VERSION = '0.5.7'
/** Deprecated in E2B's API but required in its shapes. */
export const CLIENT_ID = 'run-dat-sheesh'

const MAX_METADATA_ENTRIES = 64
const MAX_METADATA_KEY = 128
const MAX_METADATA_VALUE = 1024

export type E2bState = 'running' | 'paused'

/** templateID → our image when it names no template of ours: E2B's defaults name our default image; any other name must be an image id. */
export function imageIdForTemplate(templateId: string): string | undefined {
  return templateId === E2B_DEFAULT_TEMPLATE || templateId === E2B_CODE_INTERPRETER_TEMPLATE ? undefined : templateId
}

/** E2B `timeout` (seconds) → our ttlSeconds (at least 1: our TTL has no "now"). */
export function ttlSecondsForTimeout(timeout: number | undefined): number {
  const t = timeout ?? E2B_DEFAULT_TIMEOUT_SECONDS
  if (!Number.isInteger(t) || t < 0) throw Errors.badRequest('timeout must be a whole number of seconds, 0 or more')
  if (t > E2B_MAX_TIMEOUT_SECONDS) throw Errors.badRequest(`timeout must be at most ${E2B_MAX_TIMEOUT_SECONDS} seconds`)
  return Math.max(1, t)
}

/** When a sandbox given `ttlSeconds` from `now` ends (E2B `endAt`). */
export function endAtFor(now: Date, ttlSeconds: number): string {
  return new Date(now.getTime() + ttlSeconds * 1000).toISOString()
}

/** E2B `autoPause` → our onExpire. */
export function onExpireForAutoPause(autoPause: boolean | undefined): 'pause' | 'delete' {
  return autoPause ? 'pause' : 'delete'
}

/** E2B `metadata` → our labels (the VM's label rules then apply: `invalid_labels` names a key they refuse). */
export function labelsForMetadata(metadata: Record<string, unknown> | undefined): Record<string, string> {
  const entries = Object.entries(metadata ?? {})
  if (entries.length > MAX_METADATA_ENTRIES) throw Errors.badRequest(`metadata may have at most ${MAX_METADATA_ENTRIES} entries`)
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > MAX_METADATA_KEY) throw Errors.badRequest(`metadata keys must be 1..${MAX_METADATA_KEY} characters`)
    if (typeof v !== 'string' || v.length > MAX_METADATA_VALUE) throw Errors.badRequest(`metadata values must be strings of at most ${MAX_METADATA_VALUE} characters (key ${JSON.stringify(k)})`)
  }
  return Object.fromEntries(entries) as Record<string, string>
}

/** E2B `envVars` → the env every command of the sandbox gets (under the VM's secretEnv, which wins). */
export function envForEnvVars(envVars: Record<string, unknown> | undefined): Record<string, string> {
  const entries = Object.entries(envVars ?? {})
  for (const [k, v] of entries) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) || typeof v !== 'string') throw Errors.badRequest(`envVars: ${JSON.stringify(k)} must be a variable name with a string value`)
  }
  return Object.fromEntries(entries) as Record<string, string>
}

/** E2B `allow_internet_access` → our outboundInternet. Unset keeps our default (no internet), not E2B's. */
export function outboundInternetFor(allowInternetAccess: boolean | undefined): boolean {
  return allowInternetAccess === true
}

/**
 * The list's `metadata` query ("k1=v1&k2=v2", itself URL-encoded by the SDK) → the labels a
 * sandbox must all carry.
 */
export function labelFilterForMetadataQuery(query: string | undefined): Record<string, string> {
  if (!query) return {}
  try {
    // The SDKs encode each key and value before building the pairs: one more decode each.
    return Object.fromEntries([...new URLSearchParams(query)].map(([k, v]) => [decodeURIComponent(k), decodeURIComponent(v)]))
  } catch {
    throw Errors.badRequest('metadata must be URL-encoded key=value pairs joined by &')
  }
}

export function matchesLabelFilter(labels: Record<string, string>, filter: Record<string, string>): boolean {
  return Object.entries(filter).every(([k, v]) => labels[k] === v)
}

/** Our VM state → E2B's two: a VM that is not running (or booting) is one a connect must bring back. */
export function e2bStateOf(vmState: string): E2bState {
  return vmState === 'RUNNING' || vmState === 'STARTING' ? 'running' : 'paused'
}

/** E2B's `state` list query → the states asked for (both when absent, as E2B does). */
export function statesForQuery(state: string | string[] | undefined): E2bState[] {
  const asked = (Array.isArray(state) ? state : state === undefined ? [] : [state]).flatMap((s) => s.split(','))
  if (asked.length === 0) return ['running', 'paused']
  for (const s of asked) if (s !== 'running' && s !== 'paused') throw Errors.badRequest(`state must be running or paused, not ${JSON.stringify(s)}`)
  return asked as E2bState[]
}

/**
 * E2B `Sandbox` (create, connect). The traffic token is the envd token again: the code
 * interpreter's context calls carry only that one (api/e2b/sandbox-auth.ts).
 */
export function sandboxOf(s: E2bSandbox, envdAccessToken: string) {
  return { templateID: s.e2b?.templateId ?? s.vm.imageId, sandboxID: s.vm.id, clientID: CLIENT_ID, envdVersion: ENVD_VERSION, envdAccessToken, trafficAccessToken: envdAccessToken, domain: null }
}

/** E2B `ListedSandbox`. */
export function listedSandboxOf(s: E2bSandbox) {
  return {
    templateID: s.e2b?.templateId ?? s.vm.imageId,
    sandboxID: s.vm.id,
    clientID: CLIENT_ID,
    startedAt: s.vm.startedAt ?? s.vm.createdAt,
    // The VM's deadline while its clock runs; else what was asked last; a VM made outside the
    // E2B layer without a TTL reports its creation plus E2B's maximum.
    endAt: s.vm.expiresAt ?? s.e2b?.endAt ?? endAtFor(new Date(s.vm.createdAt), E2B_MAX_TIMEOUT_SECONDS),
    cpuCount: s.vm.cpu,
    memoryMB: s.vm.memMb,
    diskSizeMB: 0,
    metadata: s.e2b?.metadata ?? s.vm.labels ?? {},
    state: e2bStateOf(s.vm.state),
    envdVersion: ENVD_VERSION,
  }
}

/** E2B `SandboxDetail`. */
export function sandboxDetailOf(s: E2bSandbox, envdAccessToken: string) {
  return { ...listedSandboxOf(s), envdAccessToken, domain: null, allowInternetAccess: s.vm.outboundInternet }
}
