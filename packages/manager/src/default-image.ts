// First run: build the default guest image on this host (with visible progress) and register
// it as the default. Later runs find it registered and skip all of this in milliseconds;
// when the image recipe changed (an upgrade), the new image is built and becomes default.
import type { FastifyBaseLogger } from 'fastify'
import { ensureImage, recipeHash, type BuildProgress } from '@rds/guest-image'
import type { ImageService } from './services/images.ts'

export const DEFAULT_IMAGE_NAME = 'debian-bookworm (built on this host)'

export function progressPrinter(out: NodeJS.WritableStream = process.stderr): (p: BuildProgress) => void {
  let last = ''
  return (p) => {
    const line = `[${String(Math.floor(p.percent)).padStart(3)}%] (${p.index}/${p.total}) ${p.step}${p.detail ? `: ${p.detail}` : ''}`
    if (line !== last) out.write(`${line}\n`)
    last = line
  }
}

export async function ensureDefaultImage(images: ImageService, cacheDir: string, log: FastifyBaseLogger): Promise<void> {
  const current = await images.getDefault()
  const recipe = recipeHash()
  if (current && (current.name !== DEFAULT_IMAGE_NAME || current.manifest?.recipe === recipe)) return
  log.info({ cacheDir }, current ? 'image recipe changed: building the new default guest image' : 'no default image: building the guest image (first run only)')
  const started = Date.now()
  const { dir, manifest, built } = await ensureImage({ cacheDir, onProgress: progressPrinter() })
  const img = await images.importBuilt(dir, manifest as unknown as Record<string, unknown>, DEFAULT_IMAGE_NAME)
  await images.setDefault(img.id)
  log.info({ imageId: img.id, built, seconds: Math.round((Date.now() - started) / 100) / 10 }, 'default guest image ready')
}
