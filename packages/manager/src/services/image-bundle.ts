// PUT /v1/images/:id/bundle: one archive (zip, as the original took, or tar / tar.gz) holding
// vmlinux, initrd and/or rootfs.ext4, possibly under a directory. Only those three names are
// taken, by base name, and written to fixed destinations: an entry's path never becomes one.
import crypto from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { Readable } from 'node:stream'
import { walkTar } from '@rds/protocol'
import yauzl from 'yauzl'
import { Errors } from '../errors.ts'
import { IMAGE_FILES, type ImagePart } from './image-files.ts'

const PART_BY_NAME = new Map<string, ImagePart>((Object.keys(IMAGE_FILES) as ImagePart[]).map((part) => [IMAGE_FILES[part], part]))

/** Extracts the known parts of the bundle at `file` into `dir` as `<name>.bundle-<rand>` temp files. */
export async function extractBundle(file: string, dir: string): Promise<Map<ImagePart, string>> {
  const fh = await fsp.open(file, 'r')
  const magic = Buffer.alloc(4)
  await fh.read(magic, 0, 4, 0)
  await fh.close()
  const found = new Map<ImagePart, string>()
  const take = async (name: string, stream: Readable) => {
    const part = PART_BY_NAME.get(path.posix.basename(name))
    if (!part || found.has(part)) {
      stream.resume()
      return
    }
    const tmp = path.join(dir, `${IMAGE_FILES[part]}.bundle-${crypto.randomUUID()}`)
    found.set(part, tmp)
    await pipeline(stream, fs.createWriteStream(tmp, { mode: 0o644 }))
  }
  try {
    if (magic.readUInt32LE(0) === 0x04034b50) await readZip(file, take)
    else await readTar(file, magic[0] === 0x1f && magic[1] === 0x8b, take)
  } catch (err) {
    for (const tmp of found.values()) await fsp.rm(tmp, { force: true })
    throw Errors.badRequest(`Bundle is not a readable zip or tar archive: ${(err as Error).message}`)
  }
  if (found.size === 0) throw Errors.badRequest('Zip must contain vmlinux and/or rootfs.ext4 (initrd optional)')
  return found
}

function readTar(file: string, gzipped: boolean, take: (name: string, s: Readable) => Promise<void>): Promise<void> {
  return walkTar(fs.createReadStream(file), { gzip: gzipped }, (entry) => (entry.type === 'file' ? take(entry.name, entry.body) : undefined))
}

function readZip(file: string, take: (name: string, s: Readable) => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err ?? new Error('cannot open zip'))
      zip.on('error', reject)
      zip.on('end', () => resolve())
      zip.on('entry', (entry: yauzl.Entry) => {
        if (entry.fileName.endsWith('/')) return zip.readEntry()
        zip.openReadStream(entry, (e, stream) => {
          if (e || !stream) return reject(e ?? new Error('cannot read zip entry'))
          take(entry.fileName, stream).then(() => zip.readEntry(), reject)
        })
      })
      zip.readEntry()
    })
  })
}
