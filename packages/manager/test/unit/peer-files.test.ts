// The generated consumer files and the mounted-source filter, without a VM.
import { Readable } from 'node:stream'
import zlib from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { validatePeerManifest } from '@rds/protocol'
import { consumerFiles } from '../../src/services/peers/consumer-files.ts'
import { packTree, sanitizedSource, sourcePathAllowed } from '../../src/services/peers/provider-source.ts'

const manifest = validatePeerManifest({
  sdk: { name: 'greeter', description: 'Greets people' },
  modules: [
    {
      path: 'sdk/greet.ts',
      exports: [
        { name: 'greet', description: 'Says hello */ evil', params: [{ name: 'who', description: 'Name', schema: { type: 'string' } }], returns: { description: 'Greeting', schema: { type: 'string' } }, examples: [{ description: 'Greet bob', code: 'await greet("bob")' }] },
        { name: 'default', description: 'Default', params: [], returns: { description: 'x', schema: { enum: ['a', 'b'] } }, examples: [{ description: 'd', code: 'await fn()' }] },
      ],
    },
    { path: 'lib/legacy.cjs', exports: [{ name: 'add', description: 'Adds', params: [], returns: { description: 'sum', schema: { type: 'number' } }, examples: [{ description: 'e', code: 'add(1,2)' }] }] },
  ],
})

describe('consumer files', () => {
  const files = consumerFiles([{ alias: 'greeter', sourceMode: 'hidden', manifest }])

  it('lists the peers in index.json with the original shape', () => {
    expect(JSON.parse(files.get('index.json')!)).toEqual({
      peers: [
        {
          alias: 'greeter',
          sdkName: 'greeter',
          summary: 'Greets people',
          manifestPath: '/workspace/peers/greeter/manifest.json',
          readmePath: '/workspace/peers/greeter/README.md',
          proxyRoot: '/workspace/peers/greeter/proxy',
          sourceMode: 'hidden',
        },
      ],
    })
  })

  it('writes ESM proxies (named and default) and a CommonJS proxy for .cjs, with safe JSDoc', () => {
    const esm = files.get('greeter/proxy/sdk/greet.ts')!
    expect(esm).toContain('import { invokePeer } from "file:///workspace/peers/.runtime/bridge.mjs"')
    expect(esm).toContain('export async function greet(...args)')
    expect(esm).toContain('exportName: "greet"')
    expect(esm).toContain('export default async function (...args)')
    expect(esm).toContain('Says hello * / evil')
    expect(esm).toContain('- who: Name (string)')
    const cjs = files.get('greeter/proxy/lib/legacy.cjs')!
    expect(cjs).toContain('require("/workspace/peers/.runtime/bridge.cjs")')
    expect(cjs).toContain('module.exports["add"] = async (...args) =>')
    expect(files.get('greeter/README.md')).toContain('import { greet } from "file:///workspace/peers/greeter/proxy/sdk/greet.ts";')
    expect(files.get('greeter/README.md')).toContain('Returns: x (enum(a, b))')
  })
})

describe('mounted source filter', () => {
  it.each([
    ['sdk/greet.ts', true],
    ['.rds-peer/manifest.json', true],
    ['README.md', true],
    ['.env', false],
    ['config/.env.production', false],
    ['prod.env', false],
    ['.git/config', false],
    ['.ssh/id_ed25519', false],
    ['keys/server.pem', false],
    ['id_rsa', false],
    ['aws_credentials.json', false],
    ['my-secret.txt', false],
    // Every segment counts, not only the file name.
    ['secrets/db.json', false],
    ['config/credentials/prod.json', false],
    ['auth/tokens/a.txt', false],
    ['certs.key/readme.md', false],
    ['sdk/nested/deep/util.ts', true],
    ['node_modules/x/index.js', false],
    ['peers/other/proxy/a.ts', false],
  ])('%s -> %s', (p, ok) => expect(sourcePathAllowed(p)).toBe(ok))

  it('drops files that contain a provider secret value', async () => {
    const tgz = await packTree(new Map([
      ['./sdk/a.ts', 'export const a = 1'],
      ['./sdk/leak.ts', 'const token = "s3cr3t-value"'],
      ['./.env', 'X=1'],
    ]))
    const out = await sanitizedSource(Readable.from([zlib.gunzipSync(tgz)]), ['s3cr3t-value'])
    expect([...out.keys()]).toEqual(['sdk/a.ts'])
  })
})
