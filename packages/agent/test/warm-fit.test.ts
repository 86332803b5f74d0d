// Which calls a warm runtime may serve: anything that changes how the runtime starts goes cold.
import { describe, expect, it } from 'vitest'
import type { RunRequest } from '@rds/protocol'
import { appliesAfterStart, warmShapeFor } from '../src/run/warm-fit.ts'

const env = (...kv: string[]) => new Map(kv.map((e) => e.split('=') as [string, string]))
const deno = (o: Partial<RunRequest> = {}): RunRequest => ({ runtime: 'deno', code: '1', ...o })
const node = (o: Partial<RunRequest> = {}): RunRequest => ({ runtime: 'node', code: '1', ...o })

describe('warmShapeFor', () => {
  it('gives plain calls a shape, the same for equal start-up options', () => {
    expect(warmShapeFor(deno(), env(), true)).toMatchObject({ runtime: 'deno', allowNet: false, envKeys: [] })
    expect(warmShapeFor(deno({ allowNet: true }), env(), true)?.key).not.toBe(warmShapeFor(deno(), env(), true)?.key)
    expect(warmShapeFor(node({ allowNet: true }), env(), true)?.key).toBe(warmShapeFor(node(), env(), true)?.key)
  })

  it("keys Deno's shape by the env names (its --allow-env list), never by their values", () => {
    const a = warmShapeFor(deno(), env('B=1', 'A=2'), true)
    expect(a?.envKeys).toEqual(['A', 'B'])
    expect(warmShapeFor(deno(), env('A=x', 'B=y'), true)?.key).toBe(a?.key)
    expect(a?.key).not.toContain('2')
    expect(warmShapeFor(node(), env('A=1'), true)?.key).toBe(warmShapeFor(node(), env(), true)?.key)
  })

  it('sends calls with flags, args, another cwd or warm: false down the cold path', () => {
    expect(warmShapeFor(deno({ flags: ['--allow-all'] }), env(), true)).toBeUndefined()
    expect(warmShapeFor(node({ args: ['a'] }), env(), true)).toBeUndefined()
    expect(warmShapeFor(node(), env(), false)).toBeUndefined()
    expect(warmShapeFor(deno({ warm: false }), env(), true)).toBeUndefined()
    expect(warmShapeFor(deno({ flags: [], args: [] }), env(), true)).toBeDefined()
  })

  it('sends env a runtime reads only at start-up down the cold path', () => {
    for (const name of ['NODE_OPTIONS', 'node_path', 'UV_THREADPOOL_SIZE', 'LD_PRELOAD', 'DENO_DIR', 'TZ', 'LANG', 'LC_ALL', 'HOME', 'PATH', 'https_proxy', 'SSL_CERT_FILE', 'NO_COLOR']) {
      expect(appliesAfterStart(name), name).toBe(false)
      expect(warmShapeFor(node(), env(`${name}=x`), true), name).toBeUndefined()
    }
    expect(appliesAfterStart('API_TOKEN')).toBe(true)
  })
})
