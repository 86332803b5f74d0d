// The VM address plan of one manager instance: the VM network (gateway = its first address,
// VMs from the second to the last but one), and the /30 that links the VM namespace to the
// host. The database decides which VM has which address (see store/vms-repo.ts).
import { contains, formatAddress, formatCidr, parseCidr, size, type Cidr } from './ipv4.ts'

export interface AddressPlan {
  vmNet: Cidr
  gateway: string
  /** Host end of the veth link: where gateway traffic and DNS are delivered on the host. */
  hostLink: string
  /** Namespace end of the veth link: the host's next hop towards the VMs. */
  nsLink: string
  linkNet: Cidr
  /** Number of VM addresses. */
  capacity: number
  addressAt(index: number): string
  indexOf(address: string): number | undefined
}

export class AddressPlanError extends Error {}

export function createAddressPlan(vmCidr: string, linkCidr: string): AddressPlan {
  const vmNet = parseCidr(vmCidr)
  if (!vmNet || vmNet.prefix > 29 || vmNet.prefix < 16) throw new AddressPlanError(`VM_NETWORK_CIDR must be an IPv4 network from /16 to /29 (got "${vmCidr}")`)
  const linkNet = parseCidr(linkCidr)
  if (!linkNet || linkNet.prefix !== 30) throw new AddressPlanError(`VM_LINK_CIDR must be an IPv4 /30 (got "${linkCidr}")`)
  if (contains(vmNet, linkNet.base) || contains(linkNet, vmNet.base)) throw new AddressPlanError(`VM_LINK_CIDR ${formatCidr(linkNet)} overlaps VM_NETWORK_CIDR ${formatCidr(vmNet)}`)
  // .0 is the network, .1 the gateway, the last one broadcast.
  const first = vmNet.base + 2
  const capacity = size(vmNet) - 3
  return {
    vmNet,
    gateway: formatAddress(vmNet.base + 1),
    hostLink: formatAddress(linkNet.base + 1),
    nsLink: formatAddress(linkNet.base + 2),
    linkNet,
    capacity,
    addressAt: (i) => {
      if (!Number.isInteger(i) || i < 0 || i >= capacity) throw new RangeError(`address index ${i} outside 0..${capacity - 1}`)
      return formatAddress(first + i)
    },
    indexOf: (address) => {
      const c = parseCidr(address)
      if (!c || c.prefix !== 32) return undefined
      const i = c.base - first
      return i >= 0 && i < capacity ? i : undefined
    },
  }
}

/** A locally administered unicast MAC derived from the VM's address: stable and unique per address. */
export function macFor(address: string): string {
  const c = parseCidr(address)
  if (!c) throw new Error(`not an IPv4 address: ${address}`)
  const b = [0x02, 0x72, c.base >>> 24, (c.base >>> 16) & 255, (c.base >>> 8) & 255, c.base & 255]
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':')
}
