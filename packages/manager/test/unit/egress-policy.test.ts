// The egress rule book (runtime/network/egress-policy.ts) and the pieces around it that need no
// VM: address plan, CIDR parsing, the DNS REFUSED answer. The enforcement itself is tested
// with real VMs and nftables in integration/network.test.ts.
import { describe, expect, it } from 'vitest'
import { createAddressPlan, macFor } from '../../src/runtime/network/address-plan.ts'
import { compilePolicy, DEFAULT_EXCLUDED_CIDRS, domainAllowed, EXCLUDED_DEFAULT, isExcluded, parseAllowDomains, parseAllowIps, parseExcluded } from '../../src/runtime/network/egress-policy.ts'
import { forwardingGuard, hostRuleset, namespaceRuleset } from '../../src/runtime/network/nft-ruleset.ts'
import { formatCidr, parseCidr } from '../../src/runtime/network/ipv4.ts'
import { refusedAnswer } from '../../src/runtime/network/dns-forwarder.ts'

const plan = createAddressPlan('172.16.0.0/24', '169.254.100.0/30')
const compile = (allowIps: string[], outboundInternet: boolean) => {
  const r = parseAllowIps(allowIps, plan)
  if ('entry' in r) throw new Error(r.reason)
  const p = compilePolicy(r.cidrs, outboundInternet, plan)
  return { ...p, allow: p.allow.map(formatCidr), excludedAllowed: p.excludedAllowed.map(formatCidr) }
}

describe('address plan', () => {
  it('puts the gateway first, VMs after it, and refuses overlapping or odd networks', () => {
    expect(plan).toMatchObject({ gateway: '172.16.0.1', hostLink: '169.254.100.1', nsLink: '169.254.100.2', capacity: 253 })
    expect(plan.addressAt(0)).toBe('172.16.0.2')
    expect(plan.addressAt(252)).toBe('172.16.0.254')
    expect(() => plan.addressAt(253)).toThrow()
    expect(plan.indexOf('172.16.0.2')).toBe(0)
    expect(plan.indexOf('172.16.0.1')).toBeUndefined()
    expect(plan.indexOf('172.16.1.2')).toBeUndefined()
    expect(macFor('172.16.0.2')).toBe('02:72:ac:10:00:02')
    expect(() => createAddressPlan('172.16.0.0/24', '172.16.0.0/30')).toThrow(/overlaps/)
    expect(() => createAddressPlan('172.16.0.0/31', '169.254.1.0/30')).toThrow(/VM_NETWORK_CIDR/)
    expect(() => createAddressPlan('172.16.0.0/24', '169.254.1.0/29')).toThrow(/VM_LINK_CIDR/)
  })

  it('parses strictly', () => {
    for (const bad of ['1.2.3', '1.2.3.4/', '1.2.3.4/33', '01.2.3.4', '1.2.3.4/8/1', '::1', ' ', '1.2.3.4 /8']) expect(parseCidr(bad), bad).toBeUndefined()
    expect(formatCidr(parseCidr('10.1.2.3/8')!)).toBe('10.0.0.0/8')
    expect(formatCidr(parseCidr('10.1.2.3')!)).toBe('10.1.2.3/32')
  })
})

describe('egress policy', () => {
  it('follows the table: nothing, everything, or the list; DNS with outboundInternet', () => {
    expect(compile([], false)).toMatchObject({ mode: 'none', dns: 'none', gateway: false })
    expect(compile([], true)).toMatchObject({ mode: 'all', dns: 'all', gateway: false })
    expect(compile(['8.8.8.8'], false)).toMatchObject({ mode: 'list', allow: ['8.8.8.8/32'], dns: 'none' })
    expect(compile(['8.8.8.8'], true)).toMatchObject({ mode: 'list', allow: ['8.8.8.8/32'], dns: 'all' })
  })

  it('opens the host only for entries inside the VM network that name the gateway', () => {
    expect(compile(['172.16.0.1/32'], false)).toMatchObject({ mode: 'list', gateway: true, allow: [] })
    expect(compile(['172.16.0.0/24'], false)).toMatchObject({ gateway: true })
    expect(compile(['0.0.0.0/0'], true)).toMatchObject({ gateway: false, allow: ['0.0.0.0/0'] })
    expect(compile(['172.16.0.0/12'], false)).toMatchObject({ gateway: false, allow: [], excludedAllowed: ['172.16.0.0/12'] })
  })


  it('refuses entries naming other VMs, and malformed ones, with the entry and a reason', () => {
    expect(parseAllowIps(['172.16.0.7'], plan)).toEqual({ entry: '172.16.0.7', reason: expect.stringContaining('VMs can never reach each other') })
    expect(parseAllowIps(['10.0.0.0/8', 'x'], plan)).toEqual({ entry: 'x', reason: expect.stringContaining('not an IPv4') })
  })
})

describe('"internet" means public unicast (issue 13, finding 6)', () => {
  const ex = (entries: string[]) => compile(entries, true).excludedAllowed

  it('excludes private, CGNAT, link-local, loopback, multicast and the IANA special ranges by default', () => {
    for (const a of ['10.1.2.3', '172.31.255.1', '192.168.1.1', '100.64.0.1', '100.127.255.254', '169.254.169.254', '127.0.0.1', '0.1.2.3', '224.0.0.251', '239.255.255.250',
      '240.0.0.1', '255.255.255.255', '192.0.0.8', '192.0.2.10', '198.18.0.1', '198.19.255.255', '198.51.100.10', '203.0.113.10', '192.88.99.1']) {
      expect(isExcluded(a, DEFAULT_EXCLUDED_CIDRS), a).toBe(true)
    }
    for (const a of ['1.1.1.1', '8.8.8.8', '100.63.255.255', '100.128.0.0', '172.15.255.255', '172.32.0.0', '192.169.0.1', '198.17.255.255', '198.20.0.0', '223.255.255.255', '9.255.255.255', '11.0.0.0']) {
      expect(isExcluded(a, DEFAULT_EXCLUDED_CIDRS), a).toBe(false)
    }
    expect(isExcluded('not an address', DEFAULT_EXCLUDED_CIDRS)).toBe(true)
  })

  it('opens an excluded range only for an entry wholly inside it, never for a broad one', () => {
    expect(ex(['0.0.0.0/0'])).toEqual([])
    expect(compile(['0.0.0.0/0'], true).allow).toEqual(['0.0.0.0/0'])
    // The classic "two halves of the default route" trick is as broad as 0/0.
    expect(ex(['0.0.0.0/1', '128.0.0.0/1'])).toEqual([])
    // Wider than 172.16/12, so not "inside" it: only its public part.
    expect(ex(['172.0.0.0/8'])).toEqual([])
    expect(ex(['169.254.169.254', '10.0.0.0/8', '10.9.8.7/32', '100.64.0.0/10', '198.51.100.0/24'])).toEqual(['169.254.169.254/32', '10.0.0.0/8', '10.9.8.7/32', '100.64.0.0/10', '198.51.100.0/24'])
    expect(compile(['169.254.169.254'], false)).toMatchObject({ mode: 'list', excludedAllowed: ['169.254.169.254/32'], allow: [] })
  })

  it('reads EGRESS_EXCLUDED_CIDRS: a list replaces the default set, empty keeps it, nonsense and 0/0 are refused', () => {
    expect(parseExcluded(undefined)).toEqual({ cidrs: DEFAULT_EXCLUDED_CIDRS })
    expect(parseExcluded(' ')).toEqual({ cidrs: DEFAULT_EXCLUDED_CIDRS })
    expect(parseExcluded('10.0.0.0/8, 169.254.0.0/16')).toEqual({ cidrs: [parseCidr('10.0.0.0/8'), parseCidr('169.254.0.0/16')] })
    expect(parseExcluded('10.0.0.0/8,nope')).toEqual({ entry: 'nope', reason: expect.stringContaining('not an IPv4 CIDR') })
    expect(parseExcluded('0.0.0.0/0')).toEqual({ entry: '0.0.0.0/0', reason: expect.stringContaining('every address') })
    const withoutTestNet2 = parseExcluded(EXCLUDED_DEFAULT.filter((c) => c !== '198.51.100.0/24').join(','))
    expect('cidrs' in withoutTestNet2 && isExcluded('198.51.100.2', withoutTestNet2.cidrs)).toBe(false)
    // A set from the operator decides the policy too.
    const r = parseAllowIps(['10.0.0.0/8'], plan)
    expect('cidrs' in r && compilePolicy(r.cidrs, true, plan, [], [parseCidr('192.168.0.0/16')!]).excludedAllowed).toEqual([])
  })

  it('puts the excluded set before the broad accepts in every VM chain', () => {
    const r = parseAllowIps(['0.0.0.0/0', '10.1.0.0/16'], plan)
    if ('entry' in r) throw new Error(r.reason)
    const policy = compilePolicy(r.cidrs, true, plan, ['api.example.com'])
    const text = namespaceRuleset(plan, [{ key: 'k', tap: 'vmk', address: '172.16.0.2', policy, mark: 7, resolved: [] }], DEFAULT_EXCLUDED_CIDRS)
    const chain = text.slice(text.indexOf('chain vm-k'))
    const at = (needle: string) => chain.indexOf(needle)
    expect(at('@allow-excluded-k accept')).toBeGreaterThan(0)
    expect(at('@allow-excluded-k accept')).toBeLessThan(at('@excluded reject'))
    expect(at('@excluded reject')).toBeLessThan(at('@allow-k accept'))
    expect(at('@excluded reject')).toBeLessThan(at('@resolved-k'))
    expect(text).toMatch(/set allow-excluded-k \{[^}]*elements = \{ 10\.1\.0\.0\/16 \}/)
    expect(text).toContain('169.254.0.0/16')
  })
})

describe('host rules (issue 13, findings 8 and 16)', () => {
  const limits = { maxConnections: 512, newPerSecond: 100, newBurst: 200 }

  it('counts and rate-limits new connections per VM address, for forwarding and gateway services alike', () => {
    const text = hostRuleset(plan, 'abc', 'rdsabc', 3000, limits)
    expect(text).toContain('add @conns { ip saddr ct count over 512 } reject')
    expect(text).toContain('add @newconns { ip saddr limit rate over 100/second burst 200 packets } reject')
    expect(text.match(/jump vm_limits/g)).toHaveLength(2)
    // Limits come before the accepts they guard.
    const fwd = text.slice(text.indexOf('chain forward'))
    expect(fwd.indexOf('jump vm_limits')).toBeLessThan(fwd.indexOf('172.16.0.0/24 accept'))
  })

  it('lets interfaces whose forwarding a manager turned on forward replies only', () => {
    const text = forwardingGuard(['eth0', 'wan1'])
    expect(text).toContain('elements = { "eth0", "wan1" }')
    expect(text).toContain('iifname @turned_on ct direction original drop')
    expect(text).toContain('iifname @turned_on ct state invalid,untracked drop')
    expect(forwardingGuard([])).not.toContain('elements')
  })
})

describe('allowDomains', () => {
  it('normalises names and refuses what is not one', () => {
    expect(parseAllowDomains(['API.Example.com.', '*.example.org', 'api.example.com'])).toEqual({ domains: ['api.example.com', '*.example.org'] })
    for (const bad of ['localhost', 'a..b', '-a.com', 'a_b.com', '*', '*.', 'http://a.com', '1.2.3.4/8', 'a.com/x']) {
      expect(parseAllowDomains([bad]), bad).toEqual({ entry: bad, reason: expect.stringContaining('not a domain name') })
    }
  })

  it('matches a name exactly, a wildcard only its subdomains', () => {
    const d = ['api.example.com', '*.example.org']
    expect(domainAllowed(d, 'api.example.com')).toBe(true)
    expect(domainAllowed(d, 'API.EXAMPLE.COM.')).toBe(true)
    expect(domainAllowed(d, 'x.api.example.com')).toBe(false)
    expect(domainAllowed(d, 'example.com')).toBe(false)
    expect(domainAllowed(d, 'a.b.example.org')).toBe(true)
    expect(domainAllowed(d, 'example.org')).toBe(false)
    expect(domainAllowed(d, 'badexample.org')).toBe(false)
  })

  it('turns a policy into a list with filtered DNS, whatever outboundInternet says', () => {
    const p = compilePolicy([], true, plan, ['api.example.com'])
    expect(p).toMatchObject({ mode: 'list', dns: 'listed', domains: ['api.example.com'] })
  })
})

describe('DNS forwarder', () => {
  it('answers REFUSED with the id and question of the query', () => {
    const q = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1, 3, 0x77, 0x77, 0x77, 0, 0, 1, 0, 1, 0, 0, 0x29, 0x10, 0, 0, 0, 0, 0, 0, 0])
    const a = refusedAnswer(q)!
    expect(a.readUInt16BE(0)).toBe(0x1234)
    expect(a[2]! & 0x80).toBe(0x80)
    expect(a[3]! & 0x0f).toBe(5)
    expect([a.readUInt16BE(4), a.readUInt16BE(6), a.readUInt16BE(8), a.readUInt16BE(10)]).toEqual([1, 0, 0, 0])
    expect(a.length).toBe(12 + 5 + 4) // header + "www" name + type/class, the OPT record dropped
    expect(refusedAnswer(Buffer.from([1, 2, 3]))).toBeUndefined()
  })
})
