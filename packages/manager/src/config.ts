// Typed configuration from the environment. Units are part of the names (…Ms, …Mb, …Bytes).
// Public names (PORT, API_KEY, STORAGE_ROOT …) are those of the original run-dat-sheesh.
import path from 'node:path'
import { AddressPlanError, createAddressPlan } from './runtime/network/address-plan.ts'
import { DNS_LIMIT_DEFAULTS, type DnsLimitsOptions } from './runtime/network/dns-limits.ts'
import { hostNameservers } from './runtime/network/host-resolvers.ts'
import { parseExcluded } from './runtime/network/egress-policy.ts'
import type { Cidr } from './runtime/network/ipv4.ts'
import type { ConnectionLimits } from './runtime/network/nft-ruleset.ts'

export interface Config {
  port: number
  host: string
  /** Undefined means "generate one and keep it under storageRoot" (see api-key.ts). */
  apiKey: string | undefined
  /** Exec history entries kept per VM; the oldest go as new ones come. */
  execLogMaxEntries: number
  /** User snapshots in total (image seeds are not counted: SEED_SHAPES_MAX bounds those). */
  maxSnapshots: number
  storageRoot: string
  imagesDir: string
  cacheDir: string
  /** DB_DIALECT=sqlite ignores it; postgres requires it. */
  databaseUrl: string | undefined
  sqlitePath: string
  vmSecretKey: string | undefined
  /** Admin login (ADMIN_*), sessions (SESSION_*) and the failed-login limit (LOGIN_*). */
  admin: AdminAuthConfig
  /** The activity log keeps entries this many days, and at most this many. */
  activityRetentionDays: number
  activityMaxEvents: number
  /** Webhook deliveries: per-attempt timeout, attempts in all, first retry delay (doubling). */
  webhooks: { timeoutMs: number; maxAttempts: number; retryBaseMs: number }
  /** TTL of a VM created without ttlSeconds; undefined: such VMs do not expire. */
  defaultTtlSeconds: number | undefined
  /** Largest TTL a create or extend may ask for; when set, every VM expires. */
  maxTtlSeconds: number | undefined
  maxVms: number
  maxCpu: number
  maxMemMb: number
  maxAllowIps: number
  maxExecTimeoutMs: number
  maxRunTimeoutMs: number
  overlaySizeBytes: number
  rootfsCloneMode: 'auto' | 'reflink' | 'copy'
  bootTimeoutMs: number
  stopTimeoutMs: number
  execOutputMaxBytes: number
  /** Per-stream cap of a streamed exec/run: the manager holds none of it, so it can be far larger. */
  execStreamMaxBytes: number
  /** Largest JSON reply the manager reads from a guest agent; a hostile agent ignores every guest-side limit. */
  agentReplyMaxBytes: number
  /** Disk a VM's console log may use: console.log plus one rotated console.log.1. */
  consoleLogMaxBytes: number
  vmmLogMaxBytes: number
  /** VM_MEMORY_BUDGET_MB; undefined: derived from MemTotal at start (runtime/supervisor/memory-budget.ts). */
  vmMemoryBudgetMb: number | undefined
  uploadMaxBodyBytes: number
  uploadMaxEntries: number
  uploadMaxBytes: number
  qemuBin: string
  /** QEMU_TB_SIZE_MB: TCG's translation cache per VMM (MiB); 0 leaves QEMU's own default (1 GiB). KVM ignores it. */
  qemuTbSizeMb: number
  /**
   * SANDBOX_ASLR: address-space randomisation of the user's processes in the guest. 'auto' turns
   * it off under TCG only, where it makes every process start translate its code afresh.
   */
  sandboxAslr: 'auto' | 'on' | 'off'
  /** VMM_UID_BASE: a VM's VMM runs as uid/gid base + its address's low 24 bits; base itself is the clone group. */
  vmmUidBase: number
  /** 'auto' probes the host once at start; 'kvm' / 'tcg' force it. */
  accel: 'auto' | 'kvm' | 'tcg'
  /** Skip building the default image at start (tests and hosts that upload images). */
  skipDefaultImage: boolean
  logLevel: string
  /** VM addresses; the gateway is the first address. */
  vmNetworkCidr: string
  /** The /30 between the host and the VM namespace. */
  vmLinkCidr: string
  /** Where the VMs' DNS forwarder sends queries (DNS_SERVER_IP, else DNS_UPSTREAM, else the host's). */
  dnsUpstreams: string[]
  /** Not "the internet" for outboundInternet, broad allowIps and DNS answers (EGRESS_EXCLUDED_CIDRS). */
  egressExcluded: Cidr[]
  /** Per-VM conntrack bounds (VM_MAX_CONNECTIONS, VM_NEW_CONNECTIONS_PER_SECOND, VM_NEW_CONNECTIONS_BURST). */
  vmConnectionLimits: ConnectionLimits
  /** Per-VM DNS forwarder limits (DNS_QUERIES_PER_SECOND, DNS_QUERIES_BURST, DNS_QUERIES_IN_FLIGHT). */
  dnsLimits: DnsLimitsOptions
  /** KERNEL_PATH + BASE_ROOTFS_PATH (+ INITRD_PATH): register these files as the default image instead of building one. */
  builtinImage: { kernel: string; rootfs: string; initrd: string | undefined } | undefined
  /** 500 answers carry the real message (EXPOSE_INTERNAL_ERRORS=true; for debugging only). */
  exposeInternalErrors: boolean
  /** Test suites only: guests are booted so that exec can run as guest root (see test-hooks route). */
  testGuestRoot: boolean
  /** Build a booted, warmed snapshot per image and resume plain creates of its shape from it. */
  enableImageSeed: boolean
  /**
   * Snapshots of running clones stream RAM while the guest runs (true) or pause it for the whole
   * stream (false); unset: live wherever QEMU tracks every guest write (runtime/vmm/qemu/guest-ram.ts).
   */
  snapshotLive: boolean | undefined
  /** The template shape: seeded at start for every image, and the shape of warm-pool VMs. */
  seedCpu: number
  seedMemMb: number
  /** Seeds per image, the template's included; other shapes are seeded after their first cold boot. */
  seedShapesMax: number
  /** Where booted VMs keep their RAM files (tmpfs); default /dev/shm/rds-<instance>. */
  vmRamDir: string | undefined
  enableWarmPool: boolean
  warmPoolTarget: number
  warmPoolMaxVms: number
  /** Requests per minute per API key (or per client address without one); 0 = no limit (RATE_LIMIT_PER_MIN). */
  rateLimitPerMin: number
  /** Whether GET /metrics needs an API key (METRICS_AUTH=apikey) or is open (none). */
  metricsAuth: 'none' | 'apikey'
  /** VMs one minted API key may have at once; 0 = only MAX_VMS applies (QUOTA_MAX_VMS_PER_KEY). */
  quotaMaxVmsPerKey: number
  /** Live preview URLs: `<port>-<vmId>.<domain>` (PREVIEW_*; docs/api-guide.md "Preview URLs"). */
  preview: PreviewConfig
}

export interface PreviewConfig {
  /** PREVIEW_DOMAIN: preview hosts are `<port>-<vmId>.<domain>`; `localhost` needs no DNS in a browser. */
  domain: string
  /** PREVIEW_SCHEME: what browsers use to reach the manager (https when TLS is in front of it). */
  scheme: 'http' | 'https'
  /** PREVIEW_PORT: the port in preview urls (a TLS proxy's); default PORT, left out when the scheme's default. */
  urlPort: number
  /** PREVIEW_TOKEN_TTL_SECONDS: how long a preview url (and the cookie it becomes) opens its port. */
  tokenTtlSeconds: number
}

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>

function int(env: Env, name: string, fallback: number, min = 1, max = Infinity): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  // Decimal digits only: Number() would also take "1e3", "0x10" or " 12 ", which nobody means in a limit.
  const n = /^-?\d+$/.test(raw) ? Number(raw) : NaN
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name} must be an integer ${max === Infinity ? `>= ${min}` : `from ${min} to ${max}`} (got "${raw}")`)
  return n
}

const TRUE = ['true', '1', 'yes', 'on']
const FALSE = ['false', '0', 'no', 'off']

/** A switch: the usual spellings of on and off; anything else is refused rather than read as one of them. */
function bool(env: Env, name: string, fallback: boolean): boolean {
  return optionalBool(env, name) ?? fallback
}

/** Unset (or empty) is undefined: the caller decides from something it learns later. */
function optionalBool(env: Env, name: string): boolean | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  const v = raw.trim().toLowerCase()
  if (TRUE.includes(v)) return true
  if (FALSE.includes(v)) return false
  throw new ConfigError(`${name} must be true or false (got "${raw}")`)
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(`${name} must be one of ${allowed.join(', ')} (got "${raw}")`)
  return raw as T
}

const MiB = 1024 * 1024

/**
 * TCG's translation cache per VM. QEMU's default (1 GiB) becomes resident as the guest runs:
 * ~0.3 GB per VM after some use. Below ~64 MiB one exec's translations no longer fit and exec
 * slows several-fold; an idle clone fills ~70 MiB whatever the bound above that. Measured by
 * bench/density.ts (docs/benchmarks.md): 128 keeps exec as fast as QEMU's default.
 */
export const DEFAULT_TB_SIZE_MB = 128

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/

function addresses(env: Env, name: string): string[] | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  const list = raw.split(/[\s,]+/).filter(Boolean)
  if (!list.every((a) => IPV4.test(a))) throw new ConfigError(`${name} must be a comma-separated list of IPv4 addresses (got "${raw}")`)
  return list
}

function excludedCidrs(env: Env): Cidr[] {
  const r = parseExcluded(env.EGRESS_EXCLUDED_CIDRS)
  if ('entry' in r) throw new ConfigError(`EGRESS_EXCLUDED_CIDRS: ${JSON.stringify(r.entry)} ${r.reason}`)
  return r.cidrs
}

function connectionLimits(env: Env): ConnectionLimits {
  const newPerSecond = int(env, 'VM_NEW_CONNECTIONS_PER_SECOND', 100)
  return { maxConnections: int(env, 'VM_MAX_CONNECTIONS', 512), newPerSecond, newBurst: int(env, 'VM_NEW_CONNECTIONS_BURST', 2 * newPerSecond) }
}

function dnsLimits(env: Env): DnsLimitsOptions {
  const ratePerS = int(env, 'DNS_QUERIES_PER_SECOND', DNS_LIMIT_DEFAULTS.ratePerS)
  // Twice the rate by default, like the connection burst; never below the rate (a burst smaller
  // than a second's worth would make the rate unreachable).
  const burst = int(env, 'DNS_QUERIES_BURST', Math.max(DNS_LIMIT_DEFAULTS.burst, 2 * ratePerS))
  if (burst < ratePerS) throw new ConfigError(`DNS_QUERIES_BURST must be at least DNS_QUERIES_PER_SECOND (got ${burst} < ${ratePerS})`)
  return { ratePerS, burst, maxInFlight: int(env, 'DNS_QUERIES_IN_FLIGHT', DNS_LIMIT_DEFAULTS.maxInFlight) }
}

/** The original's single nameserver for VMs; here it answers the gateway forwarder's queries. */
function dnsServer(env: Env): string[] | undefined {
  const raw = env.DNS_SERVER_IP
  if (raw === undefined || raw === '') return undefined
  if (!IPV4.test(raw)) throw new ConfigError(`DNS_SERVER_IP must be an IPv4 address (got "${raw}")`)
  return [raw]
}

function builtinImage(env: Env): Config['builtinImage'] {
  const kernel = env.KERNEL_PATH || undefined
  const rootfs = env.BASE_ROOTFS_PATH || undefined
  const initrd = env.INITRD_PATH || undefined
  if (!kernel && !rootfs && !initrd) return undefined
  if (!kernel || !rootfs) throw new ConfigError('KERNEL_PATH and BASE_ROOTFS_PATH go together (INITRD_PATH is optional): set both, or neither to build the default image')
  return { kernel: path.resolve(kernel), rootfs: path.resolve(rootfs), initrd: initrd && path.resolve(initrd) }
}

function database(env: Env): string | undefined {
  const dialect = oneOf(env, 'DB_DIALECT', ['sqlite', 'postgres'] as const, env.DATABASE_URL ? 'postgres' : 'sqlite')
  if (dialect === 'sqlite') return undefined
  if (!env.DATABASE_URL) throw new ConfigError('DATABASE_URL is required when DB_DIALECT=postgres')
  return env.DATABASE_URL
}

/** A key short enough to guess is refused, never shortened or padded; the key itself is never repeated. */
export const API_KEY_MIN_LENGTH = 16

export interface AdminAuthConfig {
  /** Both set, or both undefined (no admin login at all). */
  adminEmail: string | undefined
  adminPassword: string | undefined
  sessionIdleMs: number
  sessionMaxMs: number
  loginMaxFailures: number
  loginWindowMs: number
}

export const ADMIN_PASSWORD_MIN_LENGTH = 12

function adminAuth(env: Env): AdminAuthConfig {
  const email = env.ADMIN_EMAIL || undefined
  const password = env.ADMIN_PASSWORD || undefined
  if (password !== undefined && email === undefined) throw new ConfigError('ADMIN_PASSWORD needs ADMIN_EMAIL: set both to enable the admin login, or neither')
  if (password !== undefined && password.length < ADMIN_PASSWORD_MIN_LENGTH) {
    throw new ConfigError(`ADMIN_PASSWORD must be at least ${ADMIN_PASSWORD_MIN_LENGTH} characters (got ${password.length})`)
  }
  return {
    adminEmail: password === undefined ? undefined : email,
    adminPassword: password,
    sessionIdleMs: int(env, 'SESSION_IDLE_MINUTES', 120) * 60_000,
    sessionMaxMs: int(env, 'SESSION_MAX_HOURS', 24) * 3_600_000,
    loginMaxFailures: int(env, 'LOGIN_MAX_FAILURES', 5),
    loginWindowMs: int(env, 'LOGIN_WINDOW_MINUTES', 15) * 60_000,
  }
}

function apiKey(env: Env): string | undefined {
  const raw = env.API_KEY
  if (raw === undefined || raw === '') return undefined
  if (raw.length < API_KEY_MIN_LENGTH) throw new ConfigError(`API_KEY must be at least ${API_KEY_MIN_LENGTH} characters (got ${raw.length}); unset it to have a strong key generated`)
  return raw
}

function ttlLimits(env: Env): Pick<Config, 'defaultTtlSeconds' | 'maxTtlSeconds'> {
  const optional = (name: string) => (env[name] ? int(env, name, 0, 1) : undefined)
  const defaultTtlSeconds = optional('DEFAULT_TTL_SECONDS')
  const maxTtlSeconds = optional('MAX_TTL_SECONDS')
  // A default over the cap would make every create without ttlSeconds fail.
  if (defaultTtlSeconds !== undefined && maxTtlSeconds !== undefined && defaultTtlSeconds > maxTtlSeconds) throw new ConfigError(`DEFAULT_TTL_SECONDS (${defaultTtlSeconds}) must not be over MAX_TTL_SECONDS (${maxTtlSeconds})`)
  return { defaultTtlSeconds, maxTtlSeconds }
}

export function loadConfig(env: Env = process.env): Config {
  const storageRoot = path.resolve(env.STORAGE_ROOT || '/var/lib/run-dat-sheesh')
  return {
    // Checked here: listen() would refuse it only after images, the accelerator probe and reconciliation.
    port: int(env, 'PORT', 3000, 0, 65535),
    host: env.HOST || '127.0.0.1',
    apiKey: apiKey(env),
    execLogMaxEntries: int(env, 'EXEC_LOG_MAX_ENTRIES', 1000),
    maxSnapshots: int(env, 'MAX_SNAPSHOTS', 100),
    storageRoot,
    imagesDir: path.resolve(env.IMAGES_DIR || path.join(storageRoot, 'images')),
    cacheDir: path.resolve(env.RDS_CACHE_DIR || '/var/cache/run-dat-sheesh'),
    databaseUrl: database(env),
    sqlitePath: path.resolve(env.SQLITE_PATH || path.join(storageRoot, 'manager.db')),
    vmSecretKey: env.VM_SECRET_KEY || undefined,
    admin: adminAuth(env),
    activityRetentionDays: int(env, 'ACTIVITY_RETENTION_DAYS', 30),
    activityMaxEvents: int(env, 'ACTIVITY_MAX_EVENTS', 100_000, 100),
    webhooks: { timeoutMs: int(env, 'WEBHOOK_TIMEOUT_MS', 5000, 100), maxAttempts: int(env, 'WEBHOOK_MAX_ATTEMPTS', 8), retryBaseMs: int(env, 'WEBHOOK_RETRY_BASE_MS', 5000, 10) },
    ...ttlLimits(env),
    maxVms: int(env, 'MAX_VMS', 20),
    maxCpu: int(env, 'MAX_CPU', 4),
    maxMemMb: int(env, 'MAX_MEM_MB', 2048),
    maxAllowIps: int(env, 'MAX_ALLOW_IPS', 64),
    maxExecTimeoutMs: int(env, 'MAX_EXEC_TIMEOUT_MS', 120_000),
    maxRunTimeoutMs: int(env, 'MAX_RUNTS_TIMEOUT_MS', 120_000),
    overlaySizeBytes: int(env, 'OVERLAY_SIZE_BYTES', 512 * MiB, 64 * MiB),
    rootfsCloneMode: oneOf(env, 'ROOTFS_CLONE_MODE', ['auto', 'reflink', 'copy'] as const, 'auto'),
    bootTimeoutMs: int(env, 'BOOT_TIMEOUT_MS', 120_000),
    stopTimeoutMs: int(env, 'STOP_TIMEOUT_MS', 15_000),
    execOutputMaxBytes: int(env, 'EXEC_OUTPUT_MAX_BYTES', 1 * MiB),
    execStreamMaxBytes: int(env, 'EXEC_STREAM_MAX_BYTES', 1024 * MiB),
    agentReplyMaxBytes: int(env, 'AGENT_REPLY_MAX_BYTES', 64 * MiB, 1 * MiB),
    consoleLogMaxBytes: int(env, 'CONSOLE_LOG_MAX_BYTES', 4 * MiB, 64 * 1024),
    vmmLogMaxBytes: int(env, 'VMM_LOG_MAX_BYTES', 1 * MiB, 64 * 1024),
    vmMemoryBudgetMb: env.VM_MEMORY_BUDGET_MB ? int(env, 'VM_MEMORY_BUDGET_MB', 0, 128) : undefined, // 128: one smallest guest
    // The original's 10 MiB; raise it for larger uploads.
    uploadMaxBodyBytes: int(env, 'UPLOAD_MAX_BODY_BYTES', 10 * MiB),
    uploadMaxEntries: int(env, 'UPLOAD_MAX_ENTRIES', 10_000),
    uploadMaxBytes: int(env, 'UPLOAD_MAX_BYTES', 1024 * MiB),
    qemuBin: env.QEMU_BIN || 'qemu-system-x86_64',
    // Chosen from bench/density.ts (docs/benchmarks.md, "Issue 18 — density and create speed").
    qemuTbSizeMb: int(env, 'QEMU_TB_SIZE_MB', DEFAULT_TB_SIZE_MB, 0, 4096),
    // docs/benchmarks.md, "Issue 18 — address-space randomisation under TCG".
    sandboxAslr: oneOf(env, 'SANDBOX_ASLR', ['auto', 'on', 'off'] as const, 'auto'),
    // Far above login users and the usual subuid ranges; the range is base .. base + 2^24.
    vmmUidBase: int(env, 'VMM_UID_BASE', 1_000_000_000, 65_536, 4_000_000_000),
    accel: oneOf(env, 'VMM_ACCEL', ['auto', 'kvm', 'tcg'] as const, 'auto'),
    skipDefaultImage: bool(env, 'RDS_SKIP_DEFAULT_IMAGE', false),
    logLevel: env.LOG_LEVEL || 'info',
    vmNetworkCidr: env.VM_NETWORK_CIDR || '172.16.0.0/24',
    vmLinkCidr: env.VM_LINK_CIDR || '169.254.100.0/30',
    dnsLimits: dnsLimits(env),
    dnsUpstreams: dnsServer(env) ?? addresses(env, 'DNS_UPSTREAM') ?? hostNameservers(),
    egressExcluded: excludedCidrs(env),
    vmConnectionLimits: connectionLimits(env),
    builtinImage: builtinImage(env),
    exposeInternalErrors: bool(env, 'EXPOSE_INTERNAL_ERRORS', false),
    testGuestRoot: bool(env, 'RDS_TEST_GUEST_ROOT', false),
    enableImageSeed: bool(env, 'ENABLE_IMAGE_SEED', true),
    snapshotLive: optionalBool(env, 'SNAPSHOT_LIVE'),
    seedCpu: int(env, 'SNAPSHOT_TEMPLATE_CPU', 1),
    seedMemMb: int(env, 'SNAPSHOT_TEMPLATE_MEM_MB', 256, 128),
    seedShapesMax: int(env, 'SEED_SHAPES_MAX', 4),
    vmRamDir: env.VM_RAM_DIR ? path.resolve(env.VM_RAM_DIR) : undefined,
    // On: a plain create of the template shape then takes ~0.2 s instead of a resume (~0.7 s) under TCG.
    enableWarmPool: bool(env, 'ENABLE_WARM_POOL', true),
    warmPoolTarget: int(env, 'WARM_POOL_TARGET', 1, 0),
    warmPoolMaxVms: int(env, 'WARM_POOL_MAX_VMS', 4, 0),
    rateLimitPerMin: int(env, 'RATE_LIMIT_PER_MIN', 0, 0),
    metricsAuth: oneOf(env, 'METRICS_AUTH', ['none', 'apikey'] as const, 'apikey'),
    quotaMaxVmsPerKey: int(env, 'QUOTA_MAX_VMS_PER_KEY', 0, 0),
    preview: previewConfig(env),
  }
}

function previewConfig(env: Env): PreviewConfig {
  const domain = (env.PREVIEW_DOMAIN || 'localhost').toLowerCase()
  // A host name: it is matched against Host headers and written into urls.
  if (!/^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(domain)) {
    throw new ConfigError(`PREVIEW_DOMAIN must be a host name (like localhost or preview.example.com), got ${JSON.stringify(env.PREVIEW_DOMAIN)}`)
  }
  return {
    domain,
    scheme: oneOf(env, 'PREVIEW_SCHEME', ['http', 'https'] as const, 'http'),
    urlPort: int(env, 'PREVIEW_PORT', int(env, 'PORT', 3000, 0, 65535), 1, 65535),
    tokenTtlSeconds: int(env, 'PREVIEW_TOKEN_TTL_SECONDS', 3600, 60, 30 * 86400),
  }
}

/** Fails with a ConfigError when the network settings do not form a valid address plan. */
export function addressPlanOf(config: Pick<Config, 'vmNetworkCidr' | 'vmLinkCidr'>) {
  try {
    return createAddressPlan(config.vmNetworkCidr, config.vmLinkCidr)
  } catch (err) {
    if (err instanceof AddressPlanError) throw new ConfigError(err.message)
    throw err
  }
}
