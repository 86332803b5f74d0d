// Live preview URLs: which VM and port a preview host names, who may open it, and where its
// traffic goes. The target is always computed here from the VM's record (its address, and only
// while it runs), never from anything in the request but the VM id and port of the host name: the
// front door cannot be pointed at another VM, the host or the internet.
import type { PreviewConfig } from '../../config.ts'
import { Errors } from '../../errors.ts'
import type { PublicPortsRepo } from '../../store/public-ports-repo.ts'
import type { RecordActivity } from '../activity/activity-log.ts'
import type { VmLookup } from '../vm-lookup.ts'
import { createPreviewHosts, type PreviewAddress } from './preview-host.ts'
import type { PreviewTokens, TokenCheck } from './preview-token.ts'

/** Where a preview's connections go: the guest address over the host side of the VM network. */
export interface UpstreamTarget {
  host: string
  port: number
  /** The host end of the manager's link to the VM namespace: the only source the namespace lets open connections to VMs. */
  localAddress: string
}

export const PREVIEW_TOKEN_PARAM = 'rds_preview_token'

export function createPreviews(deps: { config: PreviewConfig; vms: VmLookup; publicPorts: PublicPortsRepo; tokens: PreviewTokens; hostLink: string; activity: RecordActivity }) {
  const { config, vms, publicPorts, tokens } = deps
  const hosts = createPreviewHosts(config.domain)

  function origin(address: PreviewAddress, fallbackPort: number | undefined): string {
    const port = config.urlPort || fallbackPort
    const defaultPort = config.scheme === 'https' ? 443 : 80
    return `${config.scheme}://${hosts.name(address)}${port && port !== defaultPort ? `:${port}` : ''}`
  }

  return {
    hosts,
    config,
    /** A url that opens the port for PREVIEW_TOKEN_TTL_SECONDS; `requestPort` stands in when PORT=0 chose one at random. */
    async urlFor(vmId: string, port: number, requestPort?: number): Promise<{ url: string; expiresAt: string; public: boolean }> {
      const vm = await vms.get(vmId)
      const address = { vmId: vm.id, port }
      const expiresAtMs = Date.now() + config.tokenTtlSeconds * 1000
      const token = tokens.sign(vm.id, port, expiresAtMs)
      // The token's own expiry (whole seconds) is what the cookie and the check use.
      const expiresAt = new Date(Number(token.split('.')[0]) * 1000).toISOString()
      return { url: `${origin(address, requestPort)}/?${PREVIEW_TOKEN_PARAM}=${token}`, expiresAt, public: await publicPorts.isPublic(vm.id, port) }
    },
    async setPublic(vmId: string, port: number, open: boolean, requestPort?: number): Promise<{ port: number; public: boolean; url: string }> {
      const vm = await vms.get(vmId)
      const was = await publicPorts.isPublic(vm.id, port)
      await publicPorts.set(vm.id, port, open)
      // Opening a port to anyone who knows its host is worth a line in the activity log.
      if (was !== open) deps.activity({ type: 'vm.port_public', entityType: 'vm', entityId: vm.id, message: `VM ${vm.id}: preview of port ${port} ${open ? 'opened to anyone' : 'needs a token again'}`, meta: { port, public: open } })
      return { port, public: open, url: `${origin({ vmId: vm.id, port }, requestPort)}/` }
    },
    isPublic: (a: PreviewAddress) => publicPorts.isPublic(a.vmId, a.port),
    checkToken: (token: string | undefined, a: PreviewAddress): TokenCheck => tokens.check(token, a.vmId, a.port),
    cookieMaxAge: (token: string) => tokens.remainingSeconds(token),
    /** The VM's address and the port, or 404 / 503: only a running user VM is served. */
    async target(a: PreviewAddress): Promise<UpstreamTarget> {
      const vm = await vms.find(a.vmId)
      if (!vm) throw Errors.vmNotFound(a.vmId)
      if (vm.state !== 'RUNNING' || !vm.guestIp) throw Errors.previewVmNotRunning(vm.id, vm.state)
      return { host: vm.guestIp, port: a.port, localAddress: deps.hostLink }
    },
  }
}
export type Previews = ReturnType<typeof createPreviews>
