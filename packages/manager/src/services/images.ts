// Guest images: immutable files (vmlinux, initrd, rootfs.ext4) + manifest under IMAGES_DIR/<id>.
import crypto from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { RecordActivity } from './activity/activity-log.ts'
import type { Readable } from 'node:stream'
import { Errors } from '../errors.ts'
import type { TemplatesRepo } from '../store/templates-repo.ts'
import type { ImageRecord, ImagesRepo } from '../store/images-repo.ts'
import type { ImageSeedRecord, ImageSeedsRepo, SeedShape } from '../store/image-seeds-repo.ts'
import type { SnapshotsRepo } from '../store/snapshots-repo.ts'
import type { VmsRepo } from '../store/vms-repo.ts'
import type { Paths } from '../runtime/storage/paths.ts'
import { extractBundle } from './image-bundle.ts'
import { missingBuiltinDrivers } from '../runtime/vmm/kernel-drivers.ts'

import { IMAGE_FILES, type ImagePart } from './image-files.ts'
import type { BootFiles } from '../runtime/vmm/driver.ts'
import { copySparse } from '../runtime/storage/copy.ts'

/** The original's per-image seed fields: they describe the seed of the template shape. */
export interface ImageSeed {
  seedSnapshotId: string | null
  seedStatus: ImageSeedRecord['status'] | null
  seedUpdatedAt: string | null
  seedError: string | null
}

export type SeedPublic = Omit<ImageSeedRecord, 'imageId'>

/** What the API shows of an image: the stored record plus derived facts. */
export interface ImagePublic extends ImageRecord, ImageSeed {
  isDefault: boolean
  hasKernel: boolean
  hasInitrd: boolean
  hasRootfs: boolean
  /** Every shape's seed, the template's included. */
  seeds: SeedPublic[]
}

export type { BootFiles }

export function createImageService(deps: { repo: ImagesRepo; vms: VmsRepo; snapshots: SnapshotsRepo; templates: TemplatesRepo; seeds: ImageSeedsRepo; template: SeedShape; paths: Paths; activity: RecordActivity }) {
  const { repo, vms, paths, template } = deps

  const toPublic = (img: ImageRecord, defaultId: string | undefined, seeds: ImageSeedRecord[]): ImagePublic => {
    const t = seeds.find((s) => s.cpu === template.cpu && s.memMb === template.memMb)
    return {
      ...img,
      seedSnapshotId: t?.snapshotId ?? null,
      seedStatus: t?.status ?? null,
      seedUpdatedAt: t?.updatedAt ?? null,
      seedError: t?.error ?? null,
      isDefault: img.id === defaultId,
      hasKernel: img.kernelFilename !== null,
      hasInitrd: img.initrdFilename !== null,
      hasRootfs: img.rootfsFilename !== null,
      seeds: seeds.map(({ imageId: _, ...seed }) => seed),
    }
  }

  /** An image's files may change only while no VM boots from them. */
  async function writableImageDir(id: string): Promise<string> {
    await mustGet(id)
    if ((await vms.countUsingImage(id)) > 0) throw Errors.imageInUse()
    const dir = paths.imageDir(id)
    await fsp.mkdir(dir, { recursive: true, mode: 0o755 })
    return dir
  }

  async function recordPart(id: string, part: ImagePart): Promise<void> {
    const now = new Date().toISOString()
    const file = path.join(paths.imageDir(id), IMAGE_FILES[part])
    if (part === 'kernel') await repo.update(id, { kernelFilename: IMAGE_FILES.kernel, kernelUploadedAt: now })
    if (part === 'initrd') await repo.update(id, { initrdFilename: IMAGE_FILES.initrd })
    if (part === 'rootfs') await repo.update(id, { rootfsFilename: IMAGE_FILES.rootfs, rootfsUploadedAt: now, baseRootfsBytes: (await fsp.stat(file)).size })
  }

  async function mustGet(id: string): Promise<ImageRecord> {
    const img = await repo.get(id)
    if (!img) throw Errors.imageNotFound()
    return img
  }

  return {
    async list(): Promise<ImagePublic[]> {
      const defaultId = await repo.getDefaultId()
      const seeds = await deps.seeds.list()
      return (await repo.list()).map((i) => toPublic(i, defaultId, seeds.filter((s) => s.imageId === i.id)))
    },

    async get(id: string): Promise<ImagePublic> {
      return toPublic(await mustGet(id), await repo.getDefaultId(), await deps.seeds.list(id))
    },

    async create(input: { name: string; description: string }, createdBy: string | null = null): Promise<ImagePublic> {
      const name = input.name.trim()
      const description = input.description.trim()
      if (!name || !description) throw Errors.badRequest('name and description are required')
      const img: ImageRecord = {
        id: `img-${crypto.randomUUID()}`,
        name,
        description,
        createdAt: new Date().toISOString(),
        kernelFilename: null,
        initrdFilename: null,
        rootfsFilename: null,
        baseRootfsBytes: null,
        kernelUploadedAt: null,
        rootfsUploadedAt: null,
        manifest: null,
        createdBy,
      }
      await fsp.mkdir(paths.imageDir(img.id), { recursive: true, mode: 0o755 })
      await repo.insert(img)
      deps.activity({ type: 'image.created', entityType: 'image', entityId: img.id, message: `Image ${name} created`, meta: { name } })
      return toPublic(img, await repo.getDefaultId(), [])
    },

    /**
     * Registers image files that already exist on this host (the image built here, or the files
     * KERNEL_PATH / BASE_ROOTFS_PATH name): hard-linked in where possible, copied otherwise.
     */
    async importFiles(files: { kernel: string; rootfs: string; initrd?: string }, o: { manifest: Record<string, unknown>; name: string; description: string }): Promise<ImagePublic> {
      const id = `img-${crypto.randomUUID()}`
      const dir = paths.imageDir(id)
      await fsp.mkdir(dir, { recursive: true, mode: 0o755 })
      try {
        for (const part of ['kernel', 'initrd', 'rootfs'] as const) {
          const src = files[part]
          if (src) await linkOrCopy(src, path.join(dir, IMAGE_FILES[part]))
        }
        const { manifest } = o
        await fsp.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2))
        const now = new Date().toISOString()
        const img: ImageRecord = {
          id,
          name: o.name,
          description: o.description,
          createdAt: now,
          kernelFilename: IMAGE_FILES.kernel,
          initrdFilename: files.initrd ? IMAGE_FILES.initrd : null,
          rootfsFilename: IMAGE_FILES.rootfs,
          baseRootfsBytes: (await fsp.stat(path.join(dir, IMAGE_FILES.rootfs))).size,
          kernelUploadedAt: now,
          rootfsUploadedAt: now,
          manifest,
          createdBy: null,
        }
        await repo.insert(img)
        return toPublic(img, await repo.getDefaultId(), [])
      } catch (err) {
        await fsp.rm(dir, { recursive: true, force: true })
        throw err
      }
    },

    async setDefault(id: string): Promise<void> {
      const img = await mustGet(id)
      await repo.setDefaultId(id)
      deps.activity({ type: 'image.default_set', entityType: 'image', entityId: id, message: `Image ${img.name} is the default`, meta: { name: img.name } })
    },

    async getDefault(): Promise<ImagePublic | undefined> {
      const id = await repo.getDefaultId()
      const img = id ? await repo.get(id) : undefined
      return img && toPublic(img, id, await deps.seeds.list(img.id))
    },

    /** Streams one part to a temp file beside its final name and renames it: readers never see half a file. */
    async putPart(id: string, part: ImagePart, body: Readable): Promise<void> {
      const dir = await writableImageDir(id)
      const final = path.join(dir, IMAGE_FILES[part])
      const tmp = `${final}.upload-${crypto.randomUUID()}`
      try {
        await pipeline(body, fs.createWriteStream(tmp, { mode: 0o644 }))
        await fsp.rename(tmp, final)
      } catch (err) {
        await fsp.rm(tmp, { force: true })
        throw err
      }
      await recordPart(id, part)
      deps.activity({ type: `image.${part}_uploaded`, entityType: 'image', entityId: id, message: `Image ${id}: ${part} uploaded` })
    },

    /** A zip or tar(.gz) bundle of image parts: spooled to disk (never memory), then unpacked. */
    async putBundle(id: string, body: Readable): Promise<ImagePart[]> {
      const dir = await writableImageDir(id)
      const spool = path.join(dir, `bundle-${crypto.randomUUID()}`)
      try {
        await pipeline(body, fs.createWriteStream(spool, { mode: 0o600 }))
        const parts = await extractBundle(spool, dir)
        for (const [part, tmp] of parts) {
          await fsp.rename(tmp, path.join(dir, IMAGE_FILES[part]))
          await recordPart(id, part)
        }
        deps.activity({ type: 'image.bundle_uploaded', entityType: 'image', entityId: id, message: `Image ${id}: bundle uploaded (${[...parts.keys()].join(', ')})`, meta: { parts: [...parts.keys()] } })
        return [...parts.keys()]
      } finally {
        await fsp.rm(spool, { force: true })
      }
    },

    async remove(id: string): Promise<void> {
      const img = await mustGet(id)
      if ((await vms.countUsingImage(id)) > 0) throw Errors.imageInUse()
      // A user snapshot can only resume on its image; its seed snapshot goes with the image.
      const userSnapshots = (await deps.snapshots.list(['user'])).filter((s) => s.imageId === id).length
      if (userSnapshots > 0) throw Errors.imageHasSnapshots(userSnapshots)
      // A template's snapshot resumes on its image's rootfs, and a template naming the image would
      // only fail its next build: both keep the image.
      const templates = (await deps.templates.list()).filter((t) => t.definition.imageId === id || t.builtImageId === id).map((t) => t.name)
      if (templates.length > 0) throw Errors.imageServesTemplates(templates)
      await repo.remove(id)
      await fsp.rm(paths.imageDir(id), { recursive: true, force: true })
      deps.activity({ type: 'image.deleted', entityType: 'image', entityId: id, message: `Image ${img.name} deleted`, meta: { name: img.name } })
    },

    /** Files to boot a VM from; `imageId` undefined means the default image. */
    async resolveForBoot(imageId: string | undefined): Promise<{ id: string; files: BootFiles }> {
      const id = imageId ?? (await repo.getDefaultId())
      if (!id) throw Errors.noDefaultImage()
      const img = await mustGet(id)
      if (!img.kernelFilename || !img.rootfsFilename) throw Errors.imageIncomplete()
      const dir = paths.imageDir(id)
      const kernel = path.join(dir, img.kernelFilename)
      const rootfs = path.join(dir, img.rootfsFilename)
      if (img.initrdFilename) return { id, files: { kernel, initrd: path.join(dir, img.initrdFilename), rootfs } }
      // The original's images are kernel + rootfs: they boot as they are when the kernel can
      // reach the rootfs and build the overlay without loading a module.
      const missing = await missingBuiltinDrivers(kernel)
      if (missing.length > 0) throw Errors.imageNeedsInitrd(id, missing)
      return { id, files: { kernel, rootfs } }
    },

  }
}

/**
 * Identity of an image's files as a restored guest sees them (its page cache refers to the
 * rootfs blocks): a snapshot resumes only on the very same files. Uploads replace files by
 * rename, so inode, size and mtime change with any new content.
 */
export async function imageStamp(files: BootFiles): Promise<string> {
  const parts: string[] = []
  for (const f of [files.kernel, files.initrd, files.rootfs]) {
    // A placeholder keeps the positions, so adding or removing an initrd changes the stamp.
    if (f === undefined) {
      parts.push('-')
      continue
    }
    const st = await fsp.stat(f)
    parts.push(`${st.ino}:${st.size}:${Math.trunc(st.mtimeMs)}`)
  }
  return parts.join('/')
}
export type ImageService = ReturnType<typeof createImageService>

async function linkOrCopy(src: string, dest: string): Promise<void> {
  try {
    await fsp.link(src, dest)
  } catch {
    // Another filesystem (a container's volume): keep the rootfs's holes.
    await copySparse(src, dest)
  }
}
