import { VmmError } from './runtime/vmm/vmm-error.ts'

// The one catalogue of API errors. A service throws one of these; api/error-handler.ts is the
// only place that turns it into an HTTP response. docs/errors.md lists every code (a test checks).
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  /** Machine-readable details sent beside code and message (e.g. the limit that was hit). */
  readonly details: Record<string, unknown> | undefined
  constructor(status: number, code: string, message: string, details?: Record<string, unknown>) {
    super(message)
    this.status = status
    this.code = code
    this.details = details
  }
}

export const Errors = {
  badRequest: (message: string) => new ApiError(400, 'bad_request', message),
  invalidVmId: () => new ApiError(400, 'invalid_vm_id', 'Invalid VM id'),
  invalidCpu: (max: number) => new ApiError(400, 'invalid_cpu', `Invalid cpu (maxCpu=${max})`),
  invalidMemMb: (max: number) => new ApiError(400, 'invalid_mem_mb', `Invalid memMb (maxMemMb=${max})`),
  invalidDiskSize: (message: string) => new ApiError(400, 'invalid_disk_size', message),
  tooManyAllowIps: (max: number) => new ApiError(400, 'invalid_allow_ips', `Too many allowIps (maxAllowIps=${max})`),
  timeoutTooLarge: (field: string, max: number) => new ApiError(400, 'timeout_too_large', `timeoutMs exceeds ${field}=${max}`),
  invalidCommand: () => new ApiError(400, 'invalid_command', 'Give exactly one of cmd (a command line run by bash) and args (an argv run without a shell, args[0] looked up on the guest PATH)'),
  invalidEnv: (message: string) => new ApiError(400, 'invalid_env', message),
  invalidAllowIps: (entry: string, reason: string) => new ApiError(400, 'invalid_allow_ips', `Invalid allowIps entry ${JSON.stringify(entry)}: ${reason}`),
  invalidAllowDomains: (entry: string, reason: string) => new ApiError(400, 'invalid_allow_domains', `Invalid allowDomains entry ${JSON.stringify(entry)}: ${reason}`),
  unauthorized: () => new ApiError(401, 'unauthorized', 'Unauthorized'),
  /** The original's wording, whichever of the two was wrong. */
  invalidCredentials: () => new ApiError(401, 'invalid_credentials', 'Invalid credentials'),
  adminLoginDisabled: () => new ApiError(403, 'admin_login_disabled', 'Admin login is disabled on this manager: set ADMIN_EMAIL and ADMIN_PASSWORD to enable it'),
  loginRateLimited: (retryAfterSeconds: number) =>
    new ApiError(429, 'login_rate_limited', `Too many failed logins from this client; try again in ${retryAfterSeconds} s`, { retryAfterSeconds }),
  sessionRequired: () => new ApiError(403, 'session_required', 'This needs an admin session (log in at /login/): an API key cannot do it'),
  csrfTokenInvalid: () => new ApiError(403, 'csrf_token_invalid', 'Missing or wrong X-CSRF-Token header: requests that change state with a session cookie must send the token given by /auth/login or /auth/me'),
  apiKeyNotFound: () => new ApiError(404, 'api_key_not_found', 'Not found'),
  invalidExpiry: (message: string) => new ApiError(400, 'invalid_expires_at', message),
  invalidTtl: (field: string) => new ApiError(400, 'invalid_ttl', `${field} must be a whole number of seconds, 1 or more`),
  ttlTooLarge: (max: number, asked: number | null) =>
    new ApiError(400, 'ttl_too_large', asked === null ? `Every VM must expire on this manager: give ttlSeconds (at most MAX_TTL_SECONDS=${max})` : `ttlSeconds ${asked} is over MAX_TTL_SECONDS=${max}`, { maxTtlSeconds: max }),
  invalidLabels: (message: string) => new ApiError(400, 'invalid_labels', message),
  invalidWebhook: (message: string) => new ApiError(400, 'invalid_webhook', message),
  webhookNotFound: () => new ApiError(404, 'webhook_not_found', 'Not found'),
  /** Without an id: the original's wording on GET /v1/vms/:id and /exec-logs ("VM not found"). */
  previewUnauthorized: () =>
    new ApiError(401, 'preview_unauthorized', 'This preview needs its token: open the url from GET /v1/vms/:id/ports/:port/url (the token becomes a cookie for this host), send X-API-Key, or make the port public'),
  previewTokenInvalid: () => new ApiError(403, 'preview_token_invalid', 'The preview token is not valid for this VM and port; ask GET /v1/vms/:id/ports/:port/url for a new url'),
  previewTokenExpired: () => new ApiError(403, 'preview_token_expired', 'The preview token has expired; ask GET /v1/vms/:id/ports/:port/url for a new url'),
  invalidPreviewPort: () => new ApiError(400, 'invalid_port', 'A preview port is a number from 1 to 65535'),
  previewVmNotRunning: (id: string, state: string) =>
    new ApiError(503, 'preview_vm_not_running', `VM ${id} is ${state}: its preview is served only while it is RUNNING`, { state }),
  previewUpstreamUnreachable: (port: number, reason: string) =>
    new ApiError(502, 'preview_upstream_unreachable', `Nothing answered on port ${port} inside the VM (${reason}); is the server running and listening on 0.0.0.0:${port}?`, { port }),
  vmNotFound: (id?: string) => new ApiError(404, 'vm_not_found', id === undefined ? 'VM not found' : `VM ${id} not found`),
  imageNotFound: () => new ApiError(404, 'image_not_found', 'Image not found'),
  noDefaultImage: () => new ApiError(400, 'no_default_image', 'No default image configured; upload an image and set it as default'),
  imageIncomplete: () => new ApiError(400, 'image_incomplete', 'Image is missing kernel or rootfs'),
  imageNeedsInitrd: (id: string, missingDrivers: string[]) =>
    new ApiError(400, 'image_needs_initrd', `Image ${id} has no initrd and its kernel does not have these drivers built in: ${missingDrivers.join(', ')}. Upload an initrd (PUT /v1/images/${id}/initrd) or a kernel with them built in`, { missingDrivers }),
  imageInUse: () => new ApiError(409, 'image_in_use', 'Image is in use by an active VM'),
  imageServesTemplates: (names: string[]) =>
    new ApiError(409, 'image_in_use', `Image is what template(s) ${names.join(', ')} build on or spawn from; delete them or give them another image first`),
  imageHasSnapshots: (n: number) => new ApiError(409, 'image_has_snapshots', `Image has ${n} snapshot(s) that can only resume on it; delete them first`),
  vmStateConflict: (message: string) => new ApiError(409, 'vm_state_conflict', message),
  /** GET /ready's 503; its body also carries every check's result. */
  notReady: (failed: string[]) => new ApiError(503, 'not_ready', `Not ready: ${failed.join('; ')}`),
  rateLimited: (perMinute: number, retryAfterSeconds: number) =>
    new ApiError(429, 'rate_limited', `Too many requests: more than ${perMinute} per minute (RATE_LIMIT_PER_MIN) from this API key or client address; try again in ${retryAfterSeconds} s`, { retryAfterSeconds }),
  quotaExceeded: (what: string, max: number) => new ApiError(429, 'quota_exceeded', `VM quota exceeded (${what}=${max})`),
  snapshotQuotaExceeded: (max: number) => new ApiError(429, 'snapshot_quota_exceeded', `Snapshot quota exceeded (maxSnapshots=${max}): delete a snapshot first`, { maxSnapshots: max }),
  /** The original's message, word for word; the limit travels as a field. */
  payloadTooLarge: (limitBytes: number) => new ApiError(413, 'payload_too_large', 'Body too large', { limitBytes }),
  notFound: () => new ApiError(404, 'not_found', 'Not Found'),
  /** E2B layer: envd requests are authorized per sandbox by its envdAccessToken (or an API key). */
  e2bAccessTokenInvalid: () => new ApiError(401, 'e2b_access_token_invalid', 'Missing or wrong X-Access-Token for this sandbox (the envdAccessToken given by create or connect), and no valid X-API-Key'),
  /** E2B layer: a sandbox port other than envd's; the preview proxy will serve these. */
  e2bPortUnavailable: (port: string) => new ApiError(502, 'e2b_port_unavailable', `The request names a sandbox but no usable port (E2b-Sandbox-Port: ${JSON.stringify(port)}): give envd's 49983 or a port from 1 to 65535`),
  /** E2B code interpreter (port 49999): contexts are Python processes in the sandbox. */
  e2bCodeContextNotFound: (id: string) => new ApiError(404, 'code_context_not_found', `No code context ${JSON.stringify(id)} in this sandbox (list them with GET /contexts on port 49999)`),
  e2bUnsupportedLanguage: (language: string) =>
    new ApiError(400, 'unsupported_language', `The code interpreter runs Python only; ${JSON.stringify(language)} is not served (run JavaScript or TypeScript with commands.run('node …' / 'deno …') or our /v1 run-js and run-ts)`),
  e2bCodeContextFailed: (why: string) => new ApiError(503, 'code_context_failed', `The code context could not start: ${why}`),
  addressPoolExhausted: (capacity: number) =>
    new ApiError(503, 'address_pool_exhausted', `No free VM address: all ${capacity} addresses of VM_NETWORK_CIDR are in use; delete a VM or use a larger network`),
  ramExhausted: (dir: string, freeMb: number, memMb: number) =>
    new ApiError(503, 'host_memory_exhausted', `Not enough room for guest memory: ${memMb} MiB needed, ${Math.max(0, freeMb)} MiB left in ${dir} (VM_RAM_DIR); stop or delete a VM, or give VM_RAM_DIR a larger tmpfs`),
  memoryBudgetExhausted: (budgetMb: number, usedMb: number, memMb: number, overheadMb: number) =>
    new ApiError(503, 'host_memory_exhausted', `Not enough host memory for the guest: ${memMb} MiB${overheadMb ? ` (+ ${overheadMb} MiB for its VMM)` : ''} needed, ${Math.max(0, budgetMb - usedMb)} MiB left of VM_MEMORY_BUDGET_MB=${budgetMb} (running VMs count with their memMb and their VMM's own memory, booted or resumed from a snapshot); stop or delete a VM, or raise VM_MEMORY_BUDGET_MB`, { budgetMb, usedMb, memMb, overheadMb }),
  ramDirUnsafe: (problem: string) => new ApiError(500, 'ram_dir_unsafe', `VM cannot boot: ${problem}`),
  networkFailed: (reason: string) => new ApiError(500, 'network_failed', `VM network setup failed: ${reason}`),
  networkPolicyNotApplied: () => new ApiError(500, 'network_failed', 'The host could not apply the new network policy; nothing was changed (the old policy is still in force, the reason is in the manager log)'),
  secretKeyMissing: () => new ApiError(500, 'secret_key_missing', 'VM_SECRET_KEY is required for peer secret env support'),
  secretEnvUnreadable: () => new ApiError(500, 'secret_env_unreadable', 'The VM\'s secretEnv cannot be decrypted (VM_SECRET_KEY changed, or the stored value was altered)'),
  invalidSnapshotId: () => new ApiError(400, 'invalid_snapshot_id', 'Invalid snapshot id'),
  snapshotNotFound: (id: string) => new ApiError(404, 'snapshot_not_found', `Snapshot ${id} not found`),
  userSnapshotNotFound: () => new ApiError(404, 'snapshot_not_found', 'User overlay snapshot not found'),
  snapshotKindNotUsable: () => new ApiError(400, 'snapshot_kind_not_usable', 'Snapshot kind cannot be used as a user overlay baseline (image seeds are used automatically)'),
  snapshotImageMismatch: (snapshotImage: string, vmImage: string) => new ApiError(400, 'snapshot_image_mismatch', `Snapshot image mismatch: snapshot=${snapshotImage} vm=${vmImage}`),
  snapshotContainsSecrets: (id: string, names: number) =>
    new ApiError(400, 'snapshot_contains_secrets', `Snapshot ${id} was taken of a VM with secretEnv: its memory holds ${names} secret value(s) that a VM created from it can read. Give secretEnv with the same names as the VM it was taken of (values may differ), or set acceptSnapshotSecrets: true to accept that`, {
      secretCount: names,
    }),
  snapshotImageChanged: (id: string, imageId: string) =>
    new ApiError(409, 'snapshot_image_changed', `Snapshot ${id} was taken on other files of image ${imageId} (the image was replaced since); it cannot be resumed`),
  snapshotFilesMissing: (id: string, what: string) => new ApiError(409, 'snapshot_files_missing', `Snapshot ${id} is missing on disk (${what}); delete it`),
  snapshotInUse: (id: string, vms: number) =>
    new ApiError(409, 'snapshot_in_use', `Snapshot ${id} is the memory of ${vms} VM(s) resumed from it; stop or delete them first`),
  snapshotServesTemplate: (id: string) => new ApiError(409, 'snapshot_in_use', `Snapshot ${id} is the build a template spawns its VMs from; delete or change the template instead`),
  snapshotFailed: (reason: string) => new ApiError(500, 'snapshot_failed', `Snapshot failed: ${reason}`),
  snapshotStateTooLarge: (maxBytes: number) =>
    new ApiError(500, 'snapshot_state_too_large', `Snapshot failed: the VMM sent more state than the VM's memory and devices can hold (cap ${maxBytes} bytes); nothing was kept and the VM goes on running`, { maxBytes }),
  invalidTemplateName: (name: string) =>
    new ApiError(400, 'invalid_template_name', `Invalid template name ${JSON.stringify(name.slice(0, 80))}: use 1 to 63 lowercase letters, digits, "-" and "_", starting with a letter or digit`),
  templateNotFound: (name: string) => new ApiError(404, 'template_not_found', `Template ${name} not found`),
  templateExists: (name: string) => new ApiError(409, 'template_exists', `Template ${name} exists already; PUT /v1/templates/${name} changes it`),
  templateNotReady: (name: string, status: string, error: string | null) =>
    new ApiError(409, 'template_not_ready', `Template ${name} has no finished build to spawn from (status=${status}${error ? `: ${error}` : ''})`, { status }),
  invalidPeerLinks: (message: string) => new ApiError(400, 'invalid_peer_links', message),
  invalidPeerManifest: (alias: string, message: string) => new ApiError(400, 'invalid_peer_manifest', `Peer alias ${alias}: ${message}`),
  peerLinkNotFound: (vmId: string, alias: string) => new ApiError(404, 'peer_link_not_found', `Peer alias ${alias} not found for VM ${vmId}`),
  peerSourceUnreadable: (alias: string, why: string) =>
    new ApiError(502, 'peer_source_unreadable', `Peer alias ${alias}: the provider's /workspace could not be read for its mounted source (${why}); try again`),
  peerProviderNotRunning: (alias: string, vmId: string, state: string) => new ApiError(409, 'peer_provider_not_running', `Peer alias ${alias}: VM ${vmId} must be RUNNING (state=${state})`),
  peerProviderGone: (alias: string, vmId: string) => new ApiError(404, 'peer_provider_not_found', `Peer alias ${alias}: provider VM ${vmId} no longer exists`),
  peerCallForbidden: (message: string) => new ApiError(403, 'peer_call_forbidden', message),
  peerCallInvalid: (message: string) => new ApiError(400, 'peer_call_invalid', message),
  peerArgsTooLarge: (max: number) => new ApiError(413, 'peer_args_too_large', `peer call arguments exceed ${max} bytes (JSON)`),
  peerResultTooLarge: (max: number) => new ApiError(502, 'peer_result_too_large', `peer call result exceeds ${max} bytes (JSON)`),
  peerRateLimited: (alias: string, perSecond: number) => new ApiError(429, 'peer_rate_limited', `Peer alias ${alias}: more than ${perSecond} calls per second`),
  peerConcurrencyLimited: (alias: string, max: number) => new ApiError(429, 'peer_concurrency_limited', `Peer alias ${alias}: more than ${max} calls in flight`),
  peerCallTimeout: (alias: string, ms: number) => new ApiError(504, 'peer_call_timeout', `Peer alias ${alias}: the call did not finish within ${ms} ms`),
  peerCallFailed: (message: string) => new ApiError(502, 'peer_call_failed', message),
  bootFailed: (reason: string) => new ApiError(500, 'vm_boot_failed', `VM failed to boot: ${reason}`),
  vmmControlFailed: (reason: string) => new ApiError(500, 'vmm_control_failed', `The VMM did not carry out the request: ${reason}`),
  agentUnavailable: (id: string, reason: string) => new ApiError(502, 'agent_unavailable', `Agent of VM ${id} is not reachable: ${reason}`),
  agentReplyTooLarge: (id: string, maxBytes: number) =>
    new ApiError(502, 'agent_reply_too_large', `Agent of VM ${id} sent a reply larger than ${maxBytes} bytes (AGENT_REPLY_MAX_BYTES); the request was cancelled`, { maxBytes }),
  agentReplyInvalid: (id: string, route: string, reason: string) => new ApiError(502, 'agent_reply_invalid', `Agent of VM ${id} answered ${route} with a reply that does not match the protocol (${reason})`),
  /** The agent's own failure (its message is the agent's). */
  agentError: (message: string) => new ApiError(502, 'agent_error', `Agent error: ${message}`),
  /** The agent's sentence: which limit the archive passed. */
  archiveTooLarge: (message: string) => new ApiError(413, 'archive_too_large', message),
} as const

/** Answers one failure of `p` (by code) with another error: where the original had its own sentence for a shared case. */
export async function recode<T>(p: Promise<T>, code: string, to: () => ApiError): Promise<T> {
  try {
    return await p
  } catch (err) {
    if (err instanceof ApiError && err.code === code) throw to()
    throw err
  }
}

/** The one mapping of what went wrong below the services (runtime/vmm/vmm-error.ts) to the API. */
export function fromVmmError(e: VmmError): ApiError {
  switch (e.kind) {
    case 'start_failed':
      return Errors.bootFailed(e.message)
    case 'restore_failed':
      return Errors.bootFailed(`resume from snapshot failed: ${e.message}`)
    case 'snapshot_failed':
      return Errors.snapshotFailed(e.message)
    case 'state_too_large':
      return Errors.snapshotStateTooLarge(Number(e.details.maxBytes))
    case 'control_failed':
      return Errors.vmmControlFailed(e.message)
    case 'not_running':
      return Errors.vmStateConflict(e.message)
    case 'ram_exhausted':
      return Errors.ramExhausted(String(e.details.dir), Number(e.details.freeMb), Number(e.details.memMb))
    case 'memory_budget_exhausted':
      return Errors.memoryBudgetExhausted(Number(e.details.budgetMb), Number(e.details.usedMb), Number(e.details.memMb), Number(e.details.overheadMb ?? 0))
    case 'ram_dir_unsafe':
      return Errors.ramDirUnsafe(e.message)
  }
}

/** The API error of anything a service may throw, when it has a known kind (undefined: a bug, a 500). */
export function knownApiError(err: unknown): ApiError | undefined {
  if (err instanceof ApiError) return err
  if (err instanceof VmmError) return fromVmmError(err)
  return undefined
}
