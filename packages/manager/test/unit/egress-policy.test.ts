// The egress rule book (runtime/network/egress-policy.ts) and the pieces around it that need no
// VM: address plan, CIDR parsing, the DNS REFUSED answer. The enforcement itself is tested
// with real VMs and nftables in integration/network.test.ts.
import { describe, expect, it } from 'vitest'
import { createAddressPlan, macFor } from '../../src/runtime/network/address-plan.ts'
import { compilePolicy, domainAllowed, parseAllowDomains, parseAllowIps } from '../../src/runtime/network/egress-policy.ts'
import { formatCidr, parseCidr } from '../../src/runtime/network/ipv4.ts'
import { refusedAnswer } from '../../src/runtime/network/dns-forwarder.ts'

const plan = createAddressPlan('172.16.0.0/24', '169.254.100.0/30')
const compile = (allowIps: string[], outboundInternet: boolean) => {
  const r = parseAllowIps(allowIps, plan)
  if ('entry' in r) throw new Error(r.reason)
  const p = compilePolicy(r.cidrs, outboundInternet, plan)
  return { ...p, allow: p.allow.map(formatCidr), reservedAllowed: p.reservedAllowed.map(formatCidr) }
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
    expect(compile(['172.16.0.0/12'], false)).toMatchObject({ gateway: false, allow: ['172.16.0.0/12'] })
  })

  it('keeps reserved ranges closed unless an entry lies inside one', () => {
    expect(compile(['0.0.0.0/0'], false).reservedAllowed).toEqual([])
    expect(compile(['169.254.169.254'], false)).toMatchObject({ reservedAllowed: ['169.254.169.254/32'], allow: [] })
  })

  it('refuses entries naming other VMs, and malformed ones, with the entry and a reason', () => {
    expect(parseAllowIps(['172.16.0.7'], plan)).toEqual({ entry: '172.16.0.7', reason: expect.stringContaining('VMs can never reach each other') })
    expect(parseAllowIps(['10.0.0.0/8', 'x'], plan)).toEqual({ entry: 'x', reason: expect.stringContaining('not an IPv4') })
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
