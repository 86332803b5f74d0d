// The preview host name: `<port>-<vmId>.<PREVIEW_DOMAIN>`. The one place that reads and writes it,
// so the url the API hands out and the host the front door accepts cannot drift apart.
export interface PreviewAddress {
  vmId: string
  port: number
}

/** What a Host header says: a preview address, a preview host with a port out of range, or none of ours. */
export type HostMatch = { kind: 'preview'; address: PreviewAddress } | { kind: 'bad-port'; vmId: string } | { kind: 'other' }

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

export function createPreviewHosts(domain: string) {
  const d = domain.toLowerCase().replace(/\.$/, '')
  // Ports without leading zeros: one spelling per address, so a cookie's host is one host.
  const pattern = new RegExp(`^([1-9][0-9]{0,5})-(${UUID})\\.${escape(d)}\\.?(?::[0-9]{1,5})?$`)
  return {
    domain: d,
    parse(host: string | undefined): HostMatch {
      if (typeof host !== 'string') return { kind: 'other' }
      const m = pattern.exec(host.toLowerCase())
      if (!m) return { kind: 'other' }
      const port = Number(m[1])
      if (port > 65535) return { kind: 'bad-port', vmId: m[2]! }
      return { kind: 'preview', address: { vmId: m[2]!, port } }
    },
    name: (a: PreviewAddress) => `${a.port}-${a.vmId}.${d}`,
  }
}
export type PreviewHosts = ReturnType<typeof createPreviewHosts>
