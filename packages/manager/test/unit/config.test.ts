// Configuration from the environment (config.ts): every default, and for each variable that is
// parsed, a bad value refused with a ConfigError naming the variable and what it got (main.ts
// prints it as "configuration error: …" and exits 2). Boolean switches are read as "true" or not
// and have no bad value. API_KEY and the RAM directory are in startup-checks.test.ts.
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { addressPlanOf, ConfigError, DEFAULT_TB_SIZE_MB, loadConfig } from '../../src/config.ts'
import { DEFAULT_EXCLUDED_CIDRS } from '../../src/runtime/network/egress-policy.ts'
import { parseCidr } from '../../src/runtime/network/ipv4.ts'
import { userAslrOf } from '../../src/runtime/vmm/accel.ts'
import { resolveSnapshotMode } from '../../src/runtime/vmm/qemu/driver.ts'
import { bootRamBytes } from '../../src/runtime/vmm/qemu/guest-ram.ts'

const MiB = 1024 * 1024

function refusal(env: Record<string, string>): string {
  try {
    loadConfig(env)
  } catch (err) {
    if (err instanceof ConfigError) return err.message
    throw err
  }
  throw new Error(`accepted ${JSON.stringify(env)}`)
}

describe('defaults', () => {
  it('an empty environment gives the documented defaults (docs/operations.md)', () => {
    const { dnsUpstreams, ...config } = loadConfig({})
    expect(config).toEqual({
      port: 3000,
      host: '127.0.0.1',
      apiKey: undefined,
      execLogMaxEntries: 1000,
      maxSnapshots: 100,
      storageRoot: '/var/lib/run-dat-sheesh',
      imagesDir: '/var/lib/run-dat-sheesh/images',
      cacheDir: '/var/cache/run-dat-sheesh',
      databaseUrl: undefined,
      sqlitePath: '/var/lib/run-dat-sheesh/manager.db',
      vmSecretKey: undefined,
      admin: { adminEmail: undefined, adminPassword: undefined, sessionIdleMs: 120 * 60_000, sessionMaxMs: 24 * 3_600_000, loginMaxFailures: 5, loginWindowMs: 15 * 60_000 },
      activityRetentionDays: 30,
      activityMaxEvents: 100_000,
      webhooks: { timeoutMs: 5000, maxAttempts: 8, retryBaseMs: 5000 },
      maxVms: 20,
      maxCpu: 4,
      maxMemMb: 2048,
      maxAllowIps: 64,
      maxExecTimeoutMs: 120_000,
      maxRunTimeoutMs: 120_000,
      overlaySizeBytes: 512 * MiB,
      rootfsCloneMode: 'auto',
      bootTimeoutMs: 120_000,
      stopTimeoutMs: 15_000,
      execOutputMaxBytes: 1 * MiB,
      execStreamMaxBytes: 1024 * MiB,
      agentReplyMaxBytes: 64 * MiB,
      consoleLogMaxBytes: 4 * MiB,
      vmmLogMaxBytes: 1 * MiB,
      vmmUidBase: 1_000_000_000,
      vmMemoryBudgetMb: undefined,
      uploadMaxBodyBytes: 10 * MiB,
      uploadMaxEntries: 10_000,
      uploadMaxBytes: 1024 * MiB,
      qemuBin: 'qemu-system-x86_64',
      qemuTbSizeMb: 128,
      sandboxAslr: 'auto',
      accel: 'auto',
      skipDefaultImage: false,
      logLevel: 'info',
      vmNetworkCidr: '172.16.0.0/24',
      vmLinkCidr: '169.254.100.0/30',
      egressExcluded: DEFAULT_EXCLUDED_CIDRS,
      vmConnectionLimits: { maxConnections: 512, newPerSecond: 100, newBurst: 200 },
      dnsLimits: { ratePerS: 50, burst: 100, maxInFlight: 32 },
      builtinImage: undefined,
      exposeInternalErrors: false,
      testGuestRoot: false,
      enableImageSeed: true,
      snapshotLive: undefined,
      seedCpu: 1,
      seedMemMb: 256,
      seedShapesMax: 4,
      vmRamDir: undefined,
      enableWarmPool: true,
      warmPoolTarget: 1,
      warmPoolMaxVms: 4,
      rateLimitPerMin: 0,
      metricsAuth: 'apikey',
      quotaMaxVmsPerKey: 0,
      preview: { domain: 'localhost', scheme: 'http', urlPort: 3000, tokenTtlSeconds: 3600 },
    })
    // The host's resolv.conf: whatever it says, a list.
    expect(Array.isArray(dnsUpstreams)).toBe(true)
  })

  it('paths follow STORAGE_ROOT and are made absolute', () => {
    const c = loadConfig({ STORAGE_ROOT: 'rel/root' })
    const root = path.resolve('rel/root')
    expect(c).toMatchObject({ storageRoot: root, imagesDir: path.join(root, 'images'), sqlitePath: path.join(root, 'manager.db') })
    expect(loadConfig({ VM_RAM_DIR: 'ram' }).vmRamDir).toBe(path.resolve('ram'))
  })

  it('preview urls: domain, scheme, url port (PORT by default) and token lifetime; a domain that is not a host name is refused', () => {
    expect(loadConfig({ PORT: '8080', PREVIEW_DOMAIN: 'Preview.Example.COM', PREVIEW_SCHEME: 'https', PREVIEW_TOKEN_TTL_SECONDS: '600' }).preview).toEqual({ domain: 'preview.example.com', scheme: 'https', urlPort: 8080, tokenTtlSeconds: 600 })
    expect(loadConfig({ PREVIEW_PORT: '443' }).preview.urlPort).toBe(443)
    for (const bad of ['*.example.com', 'a..b', 'http://x', 'x/y']) expect(() => loadConfig({ PREVIEW_DOMAIN: bad }), bad).toThrow(/PREVIEW_DOMAIN/)
    expect(() => loadConfig({ PREVIEW_SCHEME: 'ftp' })).toThrow(/PREVIEW_SCHEME/)
  })

  it('the burst defaults to twice the rate', () => {
    expect(loadConfig({ VM_NEW_CONNECTIONS_PER_SECOND: '7' }).vmConnectionLimits).toEqual({ maxConnections: 512, newPerSecond: 7, newBurst: 14 })
  })

  it('an empty value is the default, not a bad value', () => {
    expect(loadConfig({ MAX_VMS: '', VMM_ACCEL: '', DNS_SERVER_IP: '', EGRESS_EXCLUDED_CIDRS: '' })).toMatchObject({ maxVms: 20, accel: 'auto', egressExcluded: DEFAULT_EXCLUDED_CIDRS })
  })
})

describe('integers', () => {
  // name, lowest accepted value
  const integers: Array<[string, number]> = [
    ['EXEC_LOG_MAX_ENTRIES', 1],
    ['MAX_SNAPSHOTS', 1],
    ['MAX_VMS', 1],
    ['MAX_CPU', 1],
    ['MAX_MEM_MB', 1],
    ['MAX_ALLOW_IPS', 1],
    ['MAX_EXEC_TIMEOUT_MS', 1],
    ['MAX_RUNTS_TIMEOUT_MS', 1],
    ['OVERLAY_SIZE_BYTES', 64 * MiB],
    ['BOOT_TIMEOUT_MS', 1],
    ['STOP_TIMEOUT_MS', 1],
    ['EXEC_OUTPUT_MAX_BYTES', 1],
    ['AGENT_REPLY_MAX_BYTES', 1 * MiB],
    ['CONSOLE_LOG_MAX_BYTES', 64 * 1024],
    ['UPLOAD_MAX_BODY_BYTES', 1],
    ['UPLOAD_MAX_ENTRIES', 1],
    ['UPLOAD_MAX_BYTES', 1],
    ['VM_MAX_CONNECTIONS', 1],
    ['VM_NEW_CONNECTIONS_PER_SECOND', 1],
    ['VM_NEW_CONNECTIONS_BURST', 1],
    ['DNS_QUERIES_PER_SECOND', 1],
    ['DNS_QUERIES_IN_FLIGHT', 1],
    ['SNAPSHOT_TEMPLATE_CPU', 1],
    ['SNAPSHOT_TEMPLATE_MEM_MB', 128],
    ['SEED_SHAPES_MAX', 1],
    ['WARM_POOL_TARGET', 0],
    ['WARM_POOL_MAX_VMS', 0],
    ['RATE_LIMIT_PER_MIN', 0],
    ['QUOTA_MAX_VMS_PER_KEY', 0],
  ]
  for (const [name, min] of integers) {
    it(`${name}: refuses text, fractions and values below ${min}`, () => {
      for (const bad of ['abc', '1.5', '12abc', '1e3', '0x10', ' 12', String(min - 1)]) {
        expect(refusal({ [name]: bad })).toBe(`${name} must be an integer >= ${min} (got "${bad}")`)
      }
      expect(() => loadConfig({ [name]: String(min) })).not.toThrow()
    })
  }

  it('DNS_QUERIES_BURST: twice the rate unless set, never below the rate', () => {
    expect(loadConfig({ DNS_QUERIES_PER_SECOND: '200' }).dnsLimits).toEqual({ ratePerS: 200, burst: 400, maxInFlight: 32 })
    expect(loadConfig({ DNS_QUERIES_PER_SECOND: '10' }).dnsLimits.burst).toBe(100)
    expect(loadConfig({ DNS_QUERIES_PER_SECOND: '10', DNS_QUERIES_BURST: '10' }).dnsLimits.burst).toBe(10)
    for (const bad of ['abc', '1.5', '0']) expect(refusal({ DNS_QUERIES_BURST: bad })).toBe(`DNS_QUERIES_BURST must be an integer >= 1 (got "${bad}")`)
    expect(refusal({ DNS_QUERIES_PER_SECOND: '50', DNS_QUERIES_BURST: '20' })).toBe('DNS_QUERIES_BURST must be at least DNS_QUERIES_PER_SECOND (got 20 < 50)')
  })

  it('DEFAULT_TTL_SECONDS and MAX_TTL_SECONDS: unset by default, 1 or more, the default not over the maximum', () => {
    expect(loadConfig({})).toMatchObject({ defaultTtlSeconds: undefined, maxTtlSeconds: undefined })
    expect(loadConfig({ DEFAULT_TTL_SECONDS: '600', MAX_TTL_SECONDS: '3600' })).toMatchObject({ defaultTtlSeconds: 600, maxTtlSeconds: 3600 })
    for (const bad of ['0', '-1', '1.5', 'soon']) expect(refusal({ DEFAULT_TTL_SECONDS: bad })).toBe(`DEFAULT_TTL_SECONDS must be an integer >= 1 (got "${bad}")`)
    expect(refusal({ DEFAULT_TTL_SECONDS: '7200', MAX_TTL_SECONDS: '3600' })).toBe('DEFAULT_TTL_SECONDS (7200) must not be over MAX_TTL_SECONDS (3600)')
  })

  it('METRICS_AUTH: none or apikey, nothing else', () => {
    expect(loadConfig({ METRICS_AUTH: 'none' }).metricsAuth).toBe('none')
    for (const bad of ['off', 'APIKEY', 'true']) expect(refusal({ METRICS_AUTH: bad })).toBe(`METRICS_AUTH must be one of none, apikey (got "${bad}")`)
  })

  it('QEMU_TB_SIZE_MB: the measured default, 0 for QEMU\'s own, at most 4096 MiB', () => {
    expect(loadConfig({}).qemuTbSizeMb).toBe(DEFAULT_TB_SIZE_MB)
    expect(loadConfig({ QEMU_TB_SIZE_MB: '0' }).qemuTbSizeMb).toBe(0)
    expect(loadConfig({ QEMU_TB_SIZE_MB: '128' }).qemuTbSizeMb).toBe(128)
    for (const bad of ['-1', '4097', '32M', '1.5', 'default']) expect(refusal({ QEMU_TB_SIZE_MB: bad })).toBe(`QEMU_TB_SIZE_MB must be an integer from 0 to 4096 (got "${bad}")`)
  })

  it('SANDBOX_ASLR: auto by default (off under TCG only), on or off when set', () => {
    expect(loadConfig({}).sandboxAslr).toBe('auto')
    expect(userAslrOf(loadConfig({}).sandboxAslr, 'tcg')).toBe(false)
    expect(userAslrOf(loadConfig({}).sandboxAslr, 'kvm')).toBe(true)
    for (const accel of ['tcg', 'kvm'] as const) {
      expect(userAslrOf(loadConfig({ SANDBOX_ASLR: 'on' }).sandboxAslr, accel)).toBe(true)
      expect(userAslrOf(loadConfig({ SANDBOX_ASLR: 'off' }).sandboxAslr, accel)).toBe(false)
    }
    for (const bad of ['true', 'ON', '0']) expect(refusal({ SANDBOX_ASLR: bad })).toBe(`SANDBOX_ASLR must be one of auto, on, off (got "${bad}")`)
  })

  it('PORT: 0 to 65535, refused here and not by listen() after the whole start-up', () => {
    for (const bad of ['http', '80.5', '-1', '65536']) expect(refusal({ PORT: bad })).toBe(`PORT must be an integer from 0 to 65535 (got "${bad}")`)
    expect(loadConfig({ PORT: '65535' }).port).toBe(65535)
    expect(loadConfig({ PORT: '0' }).port).toBe(0)
  })
})

describe('switches', () => {
  const switches: Array<[string, string, boolean]> = [
    ['ENABLE_IMAGE_SEED', 'enableImageSeed', true],
    ['ENABLE_WARM_POOL', 'enableWarmPool', true],
    ['EXPOSE_INTERNAL_ERRORS', 'exposeInternalErrors', false],
    ['RDS_TEST_GUEST_ROOT', 'testGuestRoot', false],
    ['RDS_SKIP_DEFAULT_IMAGE', 'skipDefaultImage', false],
  ]
  for (const [name, field, fallback] of switches) {
    it(`${name}: true/false, 1/0, yes/no, on/off in any case; anything else refused (default ${fallback})`, () => {
      expect(loadConfig({})[field as keyof ReturnType<typeof loadConfig>]).toBe(fallback)
      for (const on of ['true', 'TRUE', '1', 'yes', 'On']) expect(loadConfig({ [name]: on })[field as keyof ReturnType<typeof loadConfig>]).toBe(true)
      for (const off of ['false', 'False', '0', 'no', 'OFF']) expect(loadConfig({ [name]: off })[field as keyof ReturnType<typeof loadConfig>]).toBe(false)
      for (const bad of ['enabled', 'y', '2']) expect(refusal({ [name]: bad })).toBe(`${name} must be true or false (got "${bad}")`)
    })
  }
})

describe('choices and lists', () => {
  it('one of a fixed set', () => {
    expect(refusal({ ROOTFS_CLONE_MODE: 'cow' })).toBe('ROOTFS_CLONE_MODE must be one of auto, reflink, copy (got "cow")')
    expect(refusal({ VMM_ACCEL: 'hvf' })).toBe('VMM_ACCEL must be one of auto, kvm, tcg (got "hvf")')
    expect(refusal({ DB_DIALECT: 'mysql' })).toBe('DB_DIALECT must be one of sqlite, postgres (got "mysql")')
    expect(loadConfig({ VMM_ACCEL: 'kvm', ROOTFS_CLONE_MODE: 'copy' })).toMatchObject({ accel: 'kvm', rootfsCloneMode: 'copy' })
  })

  it('the database: postgres needs DATABASE_URL, sqlite ignores it', () => {
    expect(refusal({ DB_DIALECT: 'postgres' })).toBe('DATABASE_URL is required when DB_DIALECT=postgres')
    expect(loadConfig({ DATABASE_URL: 'postgres://x' }).databaseUrl).toBe('postgres://x')
    expect(loadConfig({ DATABASE_URL: 'postgres://x', DB_DIALECT: 'sqlite' }).databaseUrl).toBeUndefined()
  })

  it('DNS_SERVER_IP and DNS_UPSTREAM take IPv4 addresses only; the first wins', () => {
    expect(refusal({ DNS_SERVER_IP: 'dns.example.com' })).toBe('DNS_SERVER_IP must be an IPv4 address (got "dns.example.com")')
    expect(refusal({ DNS_SERVER_IP: '1.1.1.1,8.8.8.8' })).toMatch(/^DNS_SERVER_IP must be an IPv4 address/)
    expect(refusal({ DNS_UPSTREAM: '1.1.1.1, 999.0.0.1' })).toBe('DNS_UPSTREAM must be a comma-separated list of IPv4 addresses (got "1.1.1.1, 999.0.0.1")')
    expect(loadConfig({ DNS_UPSTREAM: '1.1.1.1, 8.8.8.8' }).dnsUpstreams).toEqual(['1.1.1.1', '8.8.8.8'])
    expect(loadConfig({ DNS_UPSTREAM: '1.1.1.1', DNS_SERVER_IP: '9.9.9.9' }).dnsUpstreams).toEqual(['9.9.9.9'])
  })

  it('EGRESS_EXCLUDED_CIDRS replaces the set; a bad entry or 0.0.0.0/0 is refused', () => {
    expect(refusal({ EGRESS_EXCLUDED_CIDRS: '10.0.0.0/8,lan' })).toBe('EGRESS_EXCLUDED_CIDRS: "lan" is not an IPv4 CIDR (a.b.c.d/n)')
    expect(refusal({ EGRESS_EXCLUDED_CIDRS: '0.0.0.0/0' })).toMatch(/^EGRESS_EXCLUDED_CIDRS: "0.0.0.0\/0" would exclude every address/)
    expect(loadConfig({ EGRESS_EXCLUDED_CIDRS: '10.0.0.0/8' }).egressExcluded).toEqual([parseCidr('10.0.0.0/8')])
  })

  it('KERNEL_PATH and BASE_ROOTFS_PATH go together', () => {
    const both = 'KERNEL_PATH and BASE_ROOTFS_PATH go together (INITRD_PATH is optional): set both, or neither to build the default image'
    expect(refusal({ KERNEL_PATH: '/k' })).toBe(both)
    expect(refusal({ BASE_ROOTFS_PATH: '/r' })).toBe(both)
    expect(refusal({ INITRD_PATH: '/i' })).toBe(both)
    expect(loadConfig({ KERNEL_PATH: '/k', BASE_ROOTFS_PATH: '/r' }).builtinImage).toEqual({ kernel: '/k', rootfs: '/r', initrd: undefined })
  })
})

describe('address plan (checked when services are composed)', () => {
  it('refuses a VM network outside /16../29, a link that is not a /30, and an overlap', () => {
    const plan = (vmNetworkCidr: string, vmLinkCidr = '169.254.100.0/30') => {
      try {
        addressPlanOf({ vmNetworkCidr, vmLinkCidr })
        return 'ok'
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError)
        return (err as Error).message
      }
    }
    expect(plan('10.0.0.0/8')).toBe('VM_NETWORK_CIDR must be an IPv4 network from /16 to /29 (got "10.0.0.0/8")')
    expect(plan('10.0.0.0/30')).toBe('VM_NETWORK_CIDR must be an IPv4 network from /16 to /29 (got "10.0.0.0/30")')
    expect(plan('not-a-cidr')).toBe('VM_NETWORK_CIDR must be an IPv4 network from /16 to /29 (got "not-a-cidr")')
    expect(plan('10.0.0.0/24', '169.254.100.0/29')).toBe('VM_LINK_CIDR must be an IPv4 /30 (got "169.254.100.0/29")')
    expect(plan('10.0.0.0/24', '10.0.0.4/30')).toBe('VM_LINK_CIDR 10.0.0.4/30 overlaps VM_NETWORK_CIDR 10.0.0.0/24')
    expect(plan('10.0.0.0/24')).toBe('ok')
  })
})

describe('SNAPSHOT_LIVE', () => {
  it('unset saves live wherever QEMU tracks every write: under KVM, and under TCG for a guest booted with the padded RAM', () => {
    expect(loadConfig({}).snapshotLive).toBeUndefined()
    expect(loadConfig({ SNAPSHOT_LIVE: '' }).snapshotLive).toBeUndefined()
    expect(resolveSnapshotMode('auto', 'kvm', 256 << 20)).toBe('live')
    expect(resolveSnapshotMode('auto', 'tcg', bootRamBytes(256, 'tcg'))).toBe('live')
    expect(resolveSnapshotMode(undefined, 'tcg', bootRamBytes(512, 'tcg'))).toBe('live')
    // A clone of a snapshot taken before the padding (its RAM a whole number of MiB) is saved stopped.
    expect(resolveSnapshotMode('auto', 'tcg', 256 << 20)).toBe('stop')
    expect(resolveSnapshotMode(undefined, 'tcg', 512 << 20)).toBe('stop')
  })

  it('true or false is what the operator gets on either accelerator; anything else is refused', () => {
    expect(loadConfig({ SNAPSHOT_LIVE: 'On' }).snapshotLive).toBe(true)
    expect(loadConfig({ SNAPSHOT_LIVE: '0' }).snapshotLive).toBe(false)
    expect(resolveSnapshotMode('live', 'tcg', 256 << 20)).toBe('live')
    expect(resolveSnapshotMode('stop', 'kvm', 256 << 20)).toBe('stop')
    expect(() => loadConfig({ SNAPSHOT_LIVE: 'sometimes' })).toThrow('SNAPSHOT_LIVE must be true or false (got "sometimes")')
  })
})
