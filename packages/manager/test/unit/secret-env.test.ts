// secretEnv without VMs: sealing, the checks at create, and masking in the history. Injection
// into real runs is tested in integration/vm.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { FastifyInstance } from 'fastify'
import { createSecretBox, parseSecretEnv } from '../../src/services/secret-env.ts'
import { maskSecrets } from '../../src/services/vm-exec.ts'
import { testApp } from '../harness/app.ts'

describe('secret box', () => {
  const box = createSecretBox('a long operator secret')
  it('seals with AES-256-GCM bound to the VM: no plaintext, another VM or key cannot open it', () => {
    const sealed = box.seal('vm-1', { TOKEN: 'tok-abc-123' })
    expect(sealed).not.toContain('tok-abc-123')
    expect(sealed.startsWith('v1:')).toBe(true)
    expect(box.open('vm-1', sealed)).toEqual({ TOKEN: 'tok-abc-123' })
    expect(box.seal('vm-1', { TOKEN: 'tok-abc-123' })).not.toBe(sealed) // fresh IV each time
    expect(() => box.open('vm-2', sealed)).toThrow(/cannot be decrypted/)
    expect(() => createSecretBox('another key').open('vm-1', sealed)).toThrow(/cannot be decrypted/)
    const [v, iv, tag, data] = sealed.split(':')
    const flipped = Buffer.from(data!, 'base64')
    flipped[0]! ^= 1
    expect(() => box.open('vm-1', [v, iv, tag, flipped.toString('base64')].join(':'))).toThrow(/cannot be decrypted/)
  })

  it('needs VM_SECRET_KEY', () => {
    expect(() => createSecretBox(undefined).requireKey()).toThrow('VM_SECRET_KEY is required for peer secret env support')
  })

  it('validates entries without ever repeating them', () => {
    expect(parseSecretEnv(['A=1', 'B=x=y'])).toEqual({ A: '1', B: 'x=y' })
    for (const bad of ['sk-live-123456', '=sk-live-123456', '1A=sk-live-123456']) {
      let message = ''
      try {
        parseSecretEnv(['OK=1', bad])
      } catch (err) {
        message = (err as Error).message
      }
      expect(message).toMatch(/index 1/)
      expect(message).not.toContain('sk-live')
    }
  })

  it('masks secret values in stored history, deep inside results too', () => {
    // Short values only as whole strings (docs/security.md, "Secrets"); more in exec-history.test.ts.
    const secrets = { TOKEN: 'tok-abc-123', PIN: '12' }
    expect(maskSecrets({ stdout: 'x tok-abc-123 y 12', result: { nested: ['tok-abc-123'] }, n: 1, pin: '12' }, secrets)).toEqual({
      stdout: 'x [secret TOKEN] y 12',
      result: { nested: ['[secret TOKEN]'] },
      n: 1,
      pin: '[secret PIN]',
    })
  })
})

describe('create with secretEnv', () => {
  let app: FastifyInstance
  let close: () => Promise<void>
  const h = { 'x-api-key': 'k' }
  beforeAll(async () => {
    ;({ app, close } = await testApp('k'))
  })
  afterAll(() => close())

  it('without VM_SECRET_KEY: the original 500, nothing created; bad entries: 400 that does not echo them', async () => {
    const r = await app.inject({ method: 'POST', url: '/v1/vms', headers: h, payload: { cpu: 1, memMb: 256, allowIps: [], secretEnv: ['TOKEN=tok-abc-123'] } })
    expect(r.statusCode).toBe(500)
    expect(r.json()).toMatchObject({ code: 'secret_key_missing', message: 'VM_SECRET_KEY is required for peer secret env support' })
    expect(r.body).not.toContain('tok-abc-123')
    const bad = await app.inject({ method: 'POST', url: '/v1/vms', headers: h, payload: { cpu: 1, memMb: 256, allowIps: [], secretEnv: ['tok-abc-123'] } })
    expect(bad.statusCode).toBe(400)
    expect(bad.json().code).toBe('invalid_env')
    expect(bad.body).not.toContain('tok-abc-123')
    expect((await app.inject({ method: 'GET', url: '/v1/vms', headers: h })).json()).toEqual([])
  })
})
