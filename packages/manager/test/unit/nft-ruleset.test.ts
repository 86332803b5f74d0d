// Golden files of the generated nftables rulesets: any change to what the host enforces shows up
// as a diff of test/unit/golden/nft/*.nft in review (`npm run test:unit -- -u` rewrites them).
// Each ruleset is also checked by the kernel's own parser (`nft --check`, never applied) in a
// throwaway network namespace, so a golden file is always a ruleset the host would load.
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { createAddressPlan } from '../../src/runtime/network/address-plan.ts'
import { compilePolicy, DEFAULT_EXCLUDED_CIDRS, parseAllowDomains, parseAllowIps, parseExcluded } from '../../src/runtime/network/egress-policy.ts'
import { tapKey } from '../../src/runtime/network/host-network.ts'
import { addResolved, forwardingGuard, hostRuleset, namespaceRuleset, TAP_PREFIX, type AttachedVm } from '../../src/runtime/network/nft-ruleset.ts'

const plan = createAddressPlan('172.16.0.0/24', '169.254.100.0/30')
const golden = (name: string) => `./golden/nft/${name}`

const canCheck = process.getuid?.() === 0 && spawnSync('unshare', ['--net', 'nft', '--version']).status === 0

/** The kernel's verdict on a ruleset, in a namespace of its own that goes when nft exits. */
function nftCheck(ruleset: string): string {
  const r = spawnSync('unshare', ['--net', 'nft', '--check', '-f', '-'], { input: ruleset, encoding: 'utf8' })
  return r.status === 0 ? 'ok' : r.stderr
}

interface VmSpec {
  vmId: string
  address: string
  allowIps?: string[]
  allowDomains?: string[]
  outboundInternet?: boolean
  resolved?: AttachedVm['resolved']
  mark: number
}

function attached(v: VmSpec, excluded = DEFAULT_EXCLUDED_CIDRS): AttachedVm {
  const ips = parseAllowIps(v.allowIps ?? [], plan)
  const names = parseAllowDomains(v.allowDomains ?? [])
  if ('entry' in ips || 'entry' in names) throw new Error(`bad fixture ${v.vmId}`)
  const key = tapKey(v.vmId)
  return {
    key,
    tap: `${TAP_PREFIX}${key}`,
    address: v.address,
    policy: compilePolicy(ips.cidrs, v.outboundInternet ?? false, plan, names.domains, excluded),
    mark: v.mark,
    resolved: v.resolved ?? [],
  }
}

// One VM per row of the policy table in egress-policy.ts, plus the gateway and excluded cases.
const noEgress: VmSpec = { vmId: 'vm-no-egress', address: '172.16.0.2', mark: 101 }
const allowIps: VmSpec = { vmId: 'vm-allow-ips', address: '172.16.0.3', allowIps: ['8.8.8.0/24', '1.1.1.1', '10.20.0.0/16', '172.16.0.1/32'], mark: 102 }
const allowDomains: VmSpec = {
  vmId: 'vm-allow-domains',
  address: '172.16.0.4',
  allowDomains: ['api.example.com', '*.example.org'],
  allowIps: ['9.9.9.9'],
  resolved: [{ address: '93.184.216.34', timeoutS: 300 }],
  mark: 103,
}
const internet: VmSpec = { vmId: 'vm-internet', address: '172.16.0.5', outboundInternet: true, mark: 104 }
const broadList: VmSpec = { vmId: 'vm-broad-list', address: '172.16.0.6', allowIps: ['0.0.0.0/0'], outboundInternet: true, mark: 105 }

describe('namespace ruleset', () => {
  const cases: Array<[string, VmSpec[]]> = [
    ['namespace-no-vms.nft', []],
    ['namespace-one-vm.nft', [noEgress]],
    ['namespace-several-vms.nft', [noEgress, allowIps, allowDomains, internet, broadList]],
  ]
  for (const [file, vms] of cases) {
    it(`${vms.length} VM(s): ${file}`, async () => {
      const text = namespaceRuleset(plan, vms.map((v) => attached(v)), DEFAULT_EXCLUDED_CIDRS)
      await expect(text).toMatchFileSnapshot(golden(file))
      if (canCheck) expect(nftCheck(text)).toBe('ok')
    })
  }

  it('with an operator\'s EGRESS_EXCLUDED_CIDRS', async () => {
    const r = parseExcluded('10.0.0.0/8, 192.168.0.0/16, 169.254.169.254/32')
    if ('entry' in r) throw new Error(r.reason)
    const text = namespaceRuleset(plan, [attached(allowIps, r.cidrs), attached(internet, r.cidrs)], r.cidrs)
    await expect(text).toMatchFileSnapshot(golden('namespace-excluded-custom.nft'))
    if (canCheck) expect(nftCheck(text)).toBe('ok')
  })

  it('adds resolved addresses without a reload', async () => {
    const key = tapKey(allowDomains.vmId)
    const text = addResolved(key, [{ address: '93.184.216.34', timeoutS: 60 }, { address: '1.2.3.4', timeoutS: 3600 }])
    await expect(text).toMatchFileSnapshot(golden('add-resolved.nft'))
    if (canCheck) expect(nftCheck(namespaceRuleset(plan, [attached(allowDomains)], DEFAULT_EXCLUDED_CIDRS) + text)).toBe('ok')
  })
})

describe('host tables', () => {
  it('the instance table with the default connection limits', async () => {
    const text = hostRuleset(plan, '0123456789', 'rds0123456789', 3000, { maxConnections: 512, newPerSecond: 100, newBurst: 200 })
    await expect(text).toMatchFileSnapshot(golden('host-default-limits.nft'))
    if (canCheck) expect(nftCheck(text)).toBe('ok')
  })

  it('the instance table with other limits, network and port', async () => {
    const other = createAddressPlan('10.203.0.0/16', '169.254.203.0/30')
    const text = hostRuleset(other, 'abcdefabcd', 'rdsabcdefabcd', 8080, { maxConnections: 16, newPerSecond: 1, newBurst: 40 })
    await expect(text).toMatchFileSnapshot(golden('host-custom-limits.nft'))
    if (canCheck) expect(nftCheck(text)).toBe('ok')
  })

  it('the shared forwarding guard, empty and with interfaces', async () => {
    await expect(forwardingGuard([])).toMatchFileSnapshot(golden('forwarding-guard-empty.nft'))
    await expect(forwardingGuard(['eth0', 'wlan0'])).toMatchFileSnapshot(golden('forwarding-guard.nft'))
    if (canCheck) expect(nftCheck(forwardingGuard(['eth0', 'wlan0']))).toBe('ok')
  })
})
