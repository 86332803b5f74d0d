import { describe, expect, it } from 'vitest'
import { declaresExport, parsePeerManifest, validatePeerManifest } from '../src/peer-manifest.ts'

const exp = (over: Record<string, unknown> = {}) => ({
  name: 'greet',
  description: 'Says hello',
  params: [{ name: 'who', description: 'Name', schema: { type: 'string' } }],
  returns: { description: 'Greeting', schema: { type: 'string' } },
  examples: [{ description: 'Greet bob', code: 'await greet("bob")' }],
  ...over,
})
const manifest = (mod: Record<string, unknown> = {}, top: Record<string, unknown> = {}) => ({
  sdk: { name: 'greeter', description: 'Greets' },
  modules: [{ path: 'sdk/greet.ts', exports: [exp()], ...mod }],
  ...top,
})

describe('peer manifest validation', () => {
  it('accepts a complete manifest and normalizes module paths', () => {
    const m = validatePeerManifest(manifest({ path: './sdk//greet.ts' }))
    expect(m.modules[0]!.path).toBe('sdk/greet.ts')
    expect(declaresExport(m, '/workspace/sdk/greet.ts', 'greet')).toBe(true)
    expect(declaresExport(m, '/workspace/sdk/greet.ts', 'other')).toBe(false)
    expect(declaresExport(m, '/workspace/sdk/../sdk/greet.ts', 'greet')).toBe(false)
    expect(declaresExport(m, 'sdk/greet.ts', 'greet')).toBe(false)
  })

  // Each case: what is wrong, and the original's message for it.
  const cases: Array<[string, unknown, string]> = [
    ['not an object', [], 'provider manifest must be an object'],
    ['sdk missing', { modules: [] }, 'provider manifest sdk must be an object'],
    ['modules not an array', { sdk: { name: 'a', description: 'b' }, modules: {} }, 'provider manifest modules must be an array'],
    ['blank sdk name', manifest({}, { sdk: { name: ' ', description: 'x' } }), 'Invalid sdk.name'],
    ['module not an object', manifest({}, { modules: [1] }), 'modules[0] must be an object'],
    ['exports not an array', manifest({ exports: 'x' }), 'modules[0].exports must be an array'],
    ['absolute path', manifest({ path: '/etc/passwd.js' }), 'module path must be relative to /workspace'],
    ['escaping path', manifest({ path: '../x.ts' }), 'module path escapes /workspace: ../x.ts'],
    ['not a module', manifest({ path: 'a.py' }), 'module path must point to a JS/TS module: a.py'],
    ['no exports', manifest({ exports: [] }), 'module /workspace/sdk/greet.ts must declare at least one export'],
    ['bad export name', manifest({ exports: [exp({ name: 'a-b' })] }), 'Invalid manifest export name: a-b'],
    ['params not an array', manifest({ exports: [exp({ params: {} })] }), 'export params must be an array'],
    ['param without schema', manifest({ exports: [exp({ params: [{ name: 'a', description: 'b' }] })] }), 'Invalid params[0].schema'],
    ['returns missing', manifest({ exports: [exp({ returns: 1 })] }), 'export returns must be an object'],
    ['no examples', manifest({ exports: [exp({ examples: [] })] }), 'export examples must be a non-empty array'],
    ['example without code', manifest({ exports: [exp({ examples: [{ description: 'd' }] })] }), 'Invalid examples[0].code'],
  ]
  it.each(cases)('refuses %s', (_what, raw, message) => {
    expect(() => validatePeerManifest(raw)).toThrow(message)
  })

  it('reports a missing file and invalid JSON', () => {
    expect(() => parsePeerManifest(undefined)).toThrow('missing provider manifest at /workspace/.rds-peer/manifest.json')
    expect(() => parsePeerManifest('{')).toThrow('provider manifest must be valid JSON')
  })
})
