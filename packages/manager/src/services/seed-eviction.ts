// Which seeds an image gives up when it holds more shapes than SEED_SHAPES_MAX. Pure, so the
// choice is tested without VMs; image-seeds.ts applies it.
import type { SeedShape, SeedStatus } from '../store/image-seeds-repo.ts'

export const sameShape = (a: SeedShape, b: SeedShape): boolean => a.cpu === b.cpu && a.memMb === b.memMb

/** One build at a time per key: the same shape of the same image is never built twice at once. */
export const seedKey = (imageId: string, shape: SeedShape): string => `${imageId}/${shape.cpu}x${shape.memMb}`

export interface SeedUse extends SeedShape {
  status: SeedStatus
  lastUsedAt: string | null
}

/**
 * The shapes to drop so the image keeps at most `max` seeds. The template shape always counts
 * (a slot is kept for it even before its seed exists) and is never dropped, nor are the shapes
 * in `keep` (being built, or just built). Seeds without a usable snapshot go first, then the
 * least recently used. `onlyUnusable` (after a failed build): a failure never costs a working seed.
 */
export function seedsToDrop(rows: SeedUse[], opts: { template: SeedShape; max: number; keep: SeedShape[]; onlyUnusable?: boolean }): SeedShape[] {
  const others = rows.filter((r) => !sameShape(r, opts.template))
  const excess = 1 + others.length - opts.max
  if (excess <= 0) return []
  const unusable = (r: SeedUse) => r.status !== 'ready'
  const candidates = others
    .filter((r) => !opts.keep.some((k) => sameShape(k, r)))
    .filter((r) => !opts.onlyUnusable || unusable(r))
    .sort((a, b) => Number(unusable(b)) - Number(unusable(a)) || (a.lastUsedAt ?? '').localeCompare(b.lastUsedAt ?? '') || a.cpu - b.cpu || a.memMb - b.memMb)
  return candidates.slice(0, excess).map(({ cpu, memMb }) => ({ cpu, memMb }))
}
