// Templates: a definition built once into a snapshot that sandboxes are spawned from, with the
// setup's result in place. `Template.create()` resolves once the build was accepted;
// `Template.waitUntilBuilt()` waits for its outcome.
import { RdsApiError } from './errors.ts'
import { Http, type ClientOptions, type RequestOptions } from './http.ts'
import { Sandbox } from './sandbox.ts'
import type { SpawnOptions, TemplateDefinition, TemplateInfo } from './types.ts'

const path = (name: string, rest = '') => `/v1/templates/${encodeURIComponent(name)}${rest}`
type Options = ClientOptions & RequestOptions

export const Template = {
  /**
   * Creates a template and starts its build (status `building`). `files`, a tar.gz, is uploaded
   * first and unpacked into /workspace before the setup runs.
   */
  async create(def: TemplateDefinition & { name: string; files?: Uint8Array | Blob }, o: Options = {}): Promise<TemplateInfo> {
    const http = new Http(o)
    const { files, ...body } = def
    if (files) await http.send('PUT', path(def.name, '/files'), { body: files as BodyInit, type: 'application/gzip' }, o)
    return http.json<TemplateInfo>('POST', '/v1/templates', body, o)
  },

  list(o: Options = {}): Promise<TemplateInfo[]> {
    return new Http(o).json<TemplateInfo[]>('GET', '/v1/templates', undefined, o)
  },

  get(name: string, o: Options = {}): Promise<TemplateInfo> {
    return new Http(o).json<TemplateInfo>('GET', path(name), undefined, o)
  },

  /** Replaces the definition and rebuilds; spawns use the last good build until the new one is ready. */
  update(name: string, def: TemplateDefinition, o: Options = {}): Promise<TemplateInfo> {
    return new Http(o).json<TemplateInfo>('PUT', path(name), def, o)
  },

  /** New files (tar.gz) for the template: it is rebuilt with them. */
  async putFiles(name: string, files: Uint8Array | Blob, o: Options = {}): Promise<void> {
    await new Http(o).send('PUT', path(name, '/files'), { body: files as BodyInit, type: 'application/gzip' }, o)
  },

  /** VMs spawned from it keep running. */
  async delete(name: string, o: Options = {}): Promise<void> {
    await new Http(o).send('DELETE', path(name), undefined, o)
  },

  /** Polls until the build finished; rejects with `template_build_failed` when it failed. */
  async waitUntilBuilt(name: string, o: Options & { intervalMs?: number } = {}): Promise<TemplateInfo> {
    for (;;) {
      const t = await Template.get(name, o)
      if (t.status === 'ready') return t
      if (t.status === 'failed') throw new RdsApiError(409, 'template_build_failed', t.error ?? `template ${name} failed to build`)
      if (o.signal?.aborted) throw o.signal.reason
      await new Promise((r) => setTimeout(r, o.intervalMs ?? 1000))
    }
  },

  /** A sandbox resumed from the template's build: `Sandbox.create({ template: name, ... })`. */
  spawn(name: string, opts: SpawnOptions & Options = {}): Promise<Sandbox> {
    return Sandbox.create({ ...opts, template: name })
  },
}
