// E2B sandboxes are our VMs: this service does the E2B control plane's verbs on the VM service
// and keeps what E2B clients say that a VM row has no room for (store/e2b-sandboxes-repo.ts).
// Translating E2B's fields into ours is api/e2b/sandbox-mapping.ts's job; this file only acts.
import type { E2bSandboxRecord, E2bSandboxesRepo } from '../../store/e2b-sandboxes-repo.ts'
import type { VmRecord, VmService } from '../vms.ts'
import type { TemplateService } from '../templates.ts'
import { ApiError, Errors } from '../../errors.ts'

export type { E2bSandboxRecord }

export interface E2bCreateInput {
  templateId: string
  /** The image when the template id names no template of ours (undefined: the default image). */
  imageId?: string
  ttlSeconds: number
  onExpire: 'delete' | 'pause'
  /** Also the VM's labels, so /v1 sees and filters them too. */
  metadata: Record<string, string>
  envVars: Record<string, string>
  autoPause: boolean
  outboundInternet: boolean
  createdBy?: string
}

export interface E2bSandbox {
  vm: VmRecord
  /** Absent for a VM never created or connected through the E2B layer. */
  e2b: E2bSandboxRecord | undefined
}

/** The sandbox's end as the SDKs see it: the VM's deadline while its clock runs, else what was asked last. */
const endAtOf = (vm: VmRecord, fallback: string) => vm.expiresAt ?? fallback

export function createE2bSandboxes(deps: { vms: VmService; repo: E2bSandboxesRepo; templates: Pick<TemplateService, 'get' | 'spawn'>; shape: { cpu: number; memMb: number } }) {
  const { vms, repo } = deps

  /** A template of ours by that name, if there is one (E2B's templateID may also name an image). */
  async function templateNamed(name: string): Promise<boolean> {
    try {
      await deps.templates.get(name)
      return true
    } catch (err) {
      if (err instanceof ApiError && err.code === 'template_not_found') return false
      throw err
    }
  }

  /** A row for a VM that had none (one made by our own API, then used through E2B). */
  async function ensureRow(vm: VmRecord, endAt: string): Promise<E2bSandboxRecord> {
    const found = await repo.find(vm.id)
    if (found) return found
    const rec: E2bSandboxRecord = { vmId: vm.id, templateId: vm.imageId, metadata: {}, envVars: {}, endAt, autoPause: false }
    await repo.upsert(rec)
    return rec
  }

  return {
    async create(input: E2bCreateInput): Promise<E2bSandbox> {
      const own = { outboundInternet: input.outboundInternet, createdBy: input.createdBy, ttlSeconds: input.ttlSeconds, onExpire: input.onExpire, labels: input.metadata }
      // A template of ours: resumed from its build. Otherwise an image, in the seed's shape, so the
      // create resumes from the image seed instead of booting cold.
      const vm = (await templateNamed(input.templateId))
        ? await deps.templates.spawn(input.templateId, { allowIps: [], ...own })
        : await vms.create({ ...deps.shape, allowIps: [], imageId: input.imageId, ...own })
      const endAt = endAtOf(vm, new Date(Date.now() + input.ttlSeconds * 1000).toISOString())
      const rec: E2bSandboxRecord = { vmId: vm.id, templateId: input.templateId, metadata: input.metadata, envVars: input.envVars, endAt, autoPause: input.autoPause }
      try {
        await repo.upsert(rec)
      } catch (err) {
        await vms.remove(vm.id).catch(() => undefined)
        throw err
      }
      return { vm, e2b: rec }
    },

    async get(id: string): Promise<E2bSandbox> {
      const vm = await vms.get(id)
      return { vm, e2b: await repo.find(id) }
    },

    async list(): Promise<E2bSandbox[]> {
      const rows = new Map((await repo.list()).map((r) => [r.vmId, r]))
      const all = (await vms.list()).map((vm) => ({ vm, e2b: rows.get(vm.id) }))
      // A VM deleted through our own API leaves its E2B row behind: the list is where it goes.
      const live = new Set(all.map((s) => s.vm.id))
      for (const id of rows.keys()) if (!live.has(id)) await repo.remove(id)
      return all
    },

    async kill(id: string): Promise<void> {
      await vms.remove(id)
      await repo.remove(id)
    },

    /** E2B `setTimeout`: the sandbox now ends `ttlSeconds` from now (our extend). */
    async setTimeout(id: string, ttlSeconds: number): Promise<void> {
      const vm = await vms.extend(id, ttlSeconds)
      const endAt = endAtOf(vm, new Date(Date.now() + ttlSeconds * 1000).toISOString())
      await ensureRow(vm, endAt)
      await repo.setEndAt(id, endAt)
    },

    async pause(id: string): Promise<void> {
      const vm = await vms.get(id)
      if (vm.state === 'PAUSED') throw Errors.vmStateConflict(`Sandbox ${id} is already paused`)
      await vms.pause(id)
    },

    /** Makes the sandbox run again if it does not; `resumed` says whether it had to. */
    async connect(id: string, ttlSeconds: number): Promise<E2bSandbox & { resumed: boolean }> {
      let vm = await vms.get(id)
      let resumed = false
      if (vm.state === 'PAUSED') {
        await vms.resume(id)
        resumed = true
      } else if (vm.state === 'STOPPED' || vm.state === 'CREATED' || vm.state === 'ERROR') {
        await vms.start(id)
        resumed = true
      }
      // A connect sets the sandbox's timeout from now, as E2B's does.
      vm = await vms.extend(id, ttlSeconds)
      const endAt = endAtOf(vm, new Date(Date.now() + ttlSeconds * 1000).toISOString())
      await ensureRow(vm, endAt)
      await repo.setEndAt(id, endAt)
      return { vm, e2b: await repo.find(id), resumed }
    },

    /** Env vars the client set for the whole sandbox (E2B `envVars`), added to every command. */
    async envVarsOf(id: string): Promise<Record<string, string>> {
      return (await repo.find(id))?.envVars ?? {}
    },
  }
}
export type E2bSandboxes = ReturnType<typeof createE2bSandboxes>
