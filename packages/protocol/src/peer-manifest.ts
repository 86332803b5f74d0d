// The provider manifest (/workspace/.rds-peer/manifest.json): what a provider VM offers to the
// VMs linked to it. The manager validates it when a consumer links or syncs, keeps the validated
// copy per link, and checks every bridge call against that copy. Shapes and messages follow the
// original (docs/peers.md); messages are prefixed `Peer alias <a>: ` where a consumer sees them.
import path from 'node:path/posix'

export const PEER_MANIFEST_PATH = '/workspace/.rds-peer/manifest.json'

export interface PeerParam {
  name: string
  description: string
  schema: Record<string, unknown>
}
export interface PeerExample {
  description: string
  code: string
}
export interface PeerExport {
  name: string
  description: string
  params: PeerParam[]
  returns: { description: string; schema: Record<string, unknown> }
  examples: PeerExample[]
}
export interface PeerModule {
  /** Relative to /workspace, normalized. */
  path: string
  description?: string
  exports: PeerExport[]
}
export interface PeerManifest {
  sdk: { name: string; description: string }
  modules: PeerModule[]
}

/** A manifest that cannot be used; `message` is the original's sentence. */
export class PeerManifestError extends Error {}

const MODULE_EXTENSIONS = ['.ts', '.mts', '.tsx', '.js', '.mjs', '.cjs', '.jsx']
const EXPORT_NAME = /^[$A-Z_a-z][$\w]*$/

const fail = (message: string): never => {
  throw new PeerManifestError(message)
}
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const str = (v: unknown, label: string): string => (typeof v === 'string' && v.trim() !== '' ? v.trim() : fail(`Invalid ${label}`))

/** Parses the manifest file's text; `undefined` means the file does not exist. */
export function parsePeerManifest(text: string | undefined): PeerManifest {
  if (text === undefined) fail(`missing provider manifest at ${PEER_MANIFEST_PATH}`)
  let raw: unknown
  try {
    raw = JSON.parse(text!)
  } catch {
    fail('provider manifest must be valid JSON')
  }
  return validatePeerManifest(raw)
}

export function validatePeerManifest(raw: unknown): PeerManifest {
  if (!isObject(raw)) fail('provider manifest must be an object')
  const m = raw as Record<string, unknown>
  if (!isObject(m.sdk)) fail('provider manifest sdk must be an object')
  const sdk = m.sdk as Record<string, unknown>
  if (!Array.isArray(m.modules)) fail('provider manifest modules must be an array')
  return {
    sdk: { name: str(sdk.name, 'sdk.name'), description: str(sdk.description, 'sdk.description') },
    modules: (m.modules as unknown[]).map((mod, i) => validateModule(mod, i)),
  }
}

/** `rel/path.ts` as declared, normalized; throws for anything outside /workspace or not a JS/TS module. */
export function normalizeModulePath(raw: unknown, label: string): string {
  if (typeof raw !== 'string') return fail(`Invalid ${label}`)
  const trimmed = raw.trim()
  if (trimmed === '' || trimmed.startsWith('/')) fail('module path must be relative to /workspace')
  const norm = path.normalize(trimmed)
  if (norm === '.' || norm === '..' || norm.startsWith('../')) fail(`module path escapes /workspace: ${raw}`)
  if (!MODULE_EXTENSIONS.includes(path.extname(norm))) fail(`module path must point to a JS/TS module: ${raw}`)
  return norm
}

function validateModule(raw: unknown, i: number): PeerModule {
  if (!isObject(raw)) fail(`modules[${i}] must be an object`)
  const mod = raw as Record<string, unknown>
  const p = normalizeModulePath(mod.path, `modules[${i}].path`)
  if (!Array.isArray(mod.exports)) fail(`modules[${i}].exports must be an array`)
  const exports = (mod.exports as unknown[]).map((e, j) => validateExport(e, i, j))
  if (exports.length === 0) fail(`module /workspace/${p} must declare at least one export`)
  const out: PeerModule = { path: p, exports }
  if (typeof mod.description === 'string' && mod.description.trim()) out.description = mod.description.trim()
  return out
}

function validateExport(raw: unknown, i: number, j: number): PeerExport {
  if (!isObject(raw)) fail(`modules[${i}].exports[${j}] must be an object`)
  const e = raw as Record<string, unknown>
  const name = str(e.name, `modules[${i}].exports[${j}].name`)
  if (name !== 'default' && !EXPORT_NAME.test(name)) fail(`Invalid manifest export name: ${name}`)
  const description = str(e.description, `modules[${i}].exports[${j}].description`)
  if (!Array.isArray(e.params)) fail('export params must be an array')
  const params = (e.params as unknown[]).map((p, k) => {
    if (!isObject(p)) fail(`export params[${k}] must be an object`)
    const q = p as Record<string, unknown>
    if (!isObject(q.schema)) fail(`Invalid params[${k}].schema`)
    return { name: str(q.name, `params[${k}].name`), description: str(q.description, `params[${k}].description`), schema: q.schema as Record<string, unknown> }
  })
  if (!isObject(e.returns)) fail('export returns must be an object')
  const r = e.returns as Record<string, unknown>
  const returnsDescription = str(r.description, 'returns.description')
  if (!isObject(r.schema)) fail('Invalid returns.schema')
  if (!Array.isArray(e.examples) || e.examples.length === 0) fail('export examples must be a non-empty array')
  const examples = (e.examples as unknown[]).map((x, k) => {
    if (!isObject(x)) fail(`examples[${k}] must be an object`)
    const y = x as Record<string, unknown>
    return { description: str(y.description, `examples[${k}].description`), code: str(y.code, `examples[${k}].code`) }
  })
  return { name, description, params, returns: { description: returnsDescription, schema: r.schema as Record<string, unknown> }, examples }
}

/** Whether `modulePath` (absolute, as proxies send it) and `exportName` are declared in the manifest. */
export function declaresExport(manifest: PeerManifest, modulePath: string, exportName: string): boolean {
  const rel = modulePath.startsWith('/workspace/') ? modulePath.slice('/workspace/'.length) : undefined
  if (rel === undefined) return false
  return manifest.modules.some((m) => m.path === rel && m.exports.some((e) => e.name === exportName))
}
