import { Type, type Static } from 'typebox'

// Count and entry checks are the service's, with the original's messages (MAX_ALLOW_IPS).
const AllowIps = Type.Array(Type.String(), {
  description:
    'Egress allowlist: IPv4 addresses or CIDRs. Non-empty: the VM may reach only these. Empty: `outboundInternet` decides (everything or nothing). ' +
    'Other VMs are never reachable; the host only through the gateway address and only when an entry inside the VM network names it (e.g. "172.16.0.1/32"); ' +
    'loopback, link-local (cloud metadata), multicast, 0/8 and 240/4 only when an entry lies inside them. IPv6 is dropped. Enforced on the host.',
})
export { AllowIps }

export const AllowDomains = Type.Array(Type.String({ minLength: 1, maxLength: 255 }), {
  maxItems: 64,
  description:
    'Host names the VM may resolve and reach ("api.example.com"; "*.example.com" for its subdomains). The gateway resolver answers only these names for the VM, ' +
    'and the addresses it returns become reachable for the answer\'s TTL (at least 60 s, at most 1 h; connections opened meanwhile last). Combines with allowIps. ' +
    'Resolved addresses of other VMs, the host or reserved ranges stay blocked.',
})

export const NetworkPatchBody = Type.Object(
  {
    allowIps: Type.Optional(AllowIps),
    allowDomains: Type.Optional(AllowDomains),
    outboundInternet: Type.Optional(Type.Boolean({ description: 'With an empty allowIps: any destination (except the always-blocked ones). With or without allowIps: the VM may resolve names through the gateway.' })),
  },
  { additionalProperties: false },
)
export type NetworkPatchBody = Static<typeof NetworkPatchBody>

export const VmNetwork = Type.Object({
  guestIp: Type.Union([Type.String(), Type.Null()]),
  gateway: Type.String({ description: 'The VM\'s gateway and DNS resolver.' }),
  mac: Type.Union([Type.String(), Type.Null()]),
  allowIps: Type.Array(Type.String()),
  allowDomains: Type.Array(Type.String()),
  outboundInternet: Type.Boolean(),
  effective: Type.Object(
    {
      egress: Type.Union([Type.Literal('none'), Type.Literal('list'), Type.Literal('all')], { description: 'none: nothing; list: only allowIps and resolved allowDomains; all: any destination except the always-blocked ones.' }),
      dns: Type.Union([Type.Literal('none'), Type.Literal('all'), Type.Literal('listed')], { description: 'Which names resolve through the gateway: none, all (outboundInternet), or only allowDomains.' }),
      gatewayServices: Type.Boolean({ description: 'Services on the host are reachable at the gateway address (allowIps names it).' }),
    },
    { description: 'The policy as the host enforces it now.' },
  ),
})
export type VmNetwork = Static<typeof VmNetwork>
