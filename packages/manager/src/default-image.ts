// First run: build the default guest image on this host (with visible progress) and register
// it as the default. Later runs find it registered and skip all of this in milliseconds;
// when the image recipe changed (an upgrade), the new image is built and becomes default.
import fsp from 'node:fs/promises'
import path from 'node:path'
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
  const at = (f: string) => path.join(dir, f)
  const img = await images.importFiles(
    { kernel: at('vmlinux'), initrd: at('initrd'), rootfs: at('rootfs.ext4') },
    { manifest: manifest as unknown as Record<string, unknown>, name: DEFAULT_IMAGE_NAME, description: `Built on this host from Debian packages (recipe ${manifest.recipe.slice(0, 12)})` },
  )
  await images.setDefault(img.id)
  log.info({ imageId: img.id, built, seconds: Math.round((Date.now() - started) / 100) / 10 }, 'default guest image ready')
}

export const BUILTIN_IMAGE_NAME = 'built-in (KERNEL_PATH, BASE_ROOTFS_PATH)'

/**
 * The original's "built-in" image: files named by KERNEL_PATH / BASE_ROOTFS_PATH (INITRD_PATH is
 * ours) become the default image instead of building one. Registered again only when the files
 * changed, as a new image: VMs and snapshots of the old one keep the files they booted from.
 */
export async function ensureBuiltinImage(images: ImageService, files: { kernel: string; rootfs: string; initrd: string | undefined }, log: FastifyBaseLogger): Promise<void> {
  const source: Record<string, string> = {}
  for (const [part, file] of Object.entries(files)) {
    if (!file) continue
    const st = await fsp.stat(file).catch(() => undefined)
    if (!st?.isFile()) throw new Error(`${part === 'kernel' ? 'KERNEL_PATH' : part === 'rootfs' ? 'BASE_ROOTFS_PATH' : 'INITRD_PATH'} ${file} is not a readable file`)
    source[part] = `${file}:${st.size}:${Math.trunc(st.mtimeMs)}`
  }
  const current = await images.getDefault()
  if (current && JSON.stringify(current.manifest?.builtinSource) === JSON.stringify(source)) return
  const img = await images.importFiles({ kernel: files.kernel, rootfs: files.rootfs, initrd: files.initrd }, {
    manifest: { builtinSource: source },
    name: BUILTIN_IMAGE_NAME,
    description: `From ${files.kernel} and ${files.rootfs}${files.initrd ? ` with ${files.initrd}` : ''}`,
  })
  await images.setDefault(img.id)
  log.info({ imageId: img.id, ...files }, 'built-in image registered as the default (KERNEL_PATH, BASE_ROOTFS_PATH)')
}
