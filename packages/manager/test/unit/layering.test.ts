// The manager's layers, checked on the source: dependencies point api → services →
// runtime/store only, and no module reaches itself through its imports (a cycle is what
// late-bound getters used to paper over). Type-only imports count too: a type from a
// higher layer is still knowledge a lower layer must not have.
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

const SRC = path.resolve(import.meta.dirname, '../../src')

/** Which top-level folders (or root files) each layer may import from. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  api: ['api', 'services', 'errors.ts'],
  services: ['services', 'runtime', 'store', 'errors.ts', 'config.ts'],
  runtime: ['runtime'],
  store: ['store'],
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) return sourceFiles(p)
    return e.name.endsWith('.ts') ? [p] : []
  })
}

/** Relative imports of a file, resolved to absolute paths (packages and node: builtins are not layers). */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8')
  const found = [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+'(\.[^']+)'/g), ...text.matchAll(/import\('(\.[^']+)'\)/g)]
  return found.map((m) => path.resolve(path.dirname(file), m[1]!))
}

const layerOf = (abs: string): string => path.relative(SRC, abs).split(path.sep)[0]!

const files = sourceFiles(SRC)
const graph = new Map(files.map((f) => [f, importsOf(f)]))

describe('manager layering', () => {
  it('finds the source (the check cannot pass on an empty tree)', () => {
    expect(files.length).toBeGreaterThan(50)
    expect([...graph.values()].flat().length).toBeGreaterThan(100)
  })

  for (const [layer, allowed] of Object.entries(MAY_IMPORT)) {
    it(`${layer}/ imports only from ${allowed.join(', ')}`, () => {
      const wrong: string[] = []
      for (const [file, deps] of graph) {
        if (layerOf(file) !== layer) continue
        for (const dep of deps) {
          if (!allowed.includes(layerOf(dep))) wrong.push(`${path.relative(SRC, file)} -> ${path.relative(SRC, dep)}`)
        }
      }
      expect(wrong).toEqual([])
    })
  }

  it('has no import cycles', () => {
    const cycles: string[] = []
    const state = new Map<string, 'visiting' | 'done'>()
    const stack: string[] = []
    const visit = (f: string) => {
      if (state.get(f) === 'done') return
      if (state.get(f) === 'visiting') {
        cycles.push(stack.slice(stack.indexOf(f)).concat(f).map((p) => path.relative(SRC, p)).join(' -> '))
        return
      }
      state.set(f, 'visiting')
      stack.push(f)
      for (const d of graph.get(f) ?? []) if (graph.has(d)) visit(d)
      stack.pop()
      state.set(f, 'done')
    }
    for (const f of graph.keys()) visit(f)
    expect(cycles).toEqual([])
  })
})
