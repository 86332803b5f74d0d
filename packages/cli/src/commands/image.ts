// sheesh image ls | default <id> | rm <id> | upload <name> … | build [--name N]: guest images. `build`
// makes the guest image from this checkout's recipe (cached like the manager's own) and uploads it.
import fs from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { Images, type ImagePart } from '@run-dat-sheesh/sdk/source'
import { need, UsageError, type Command } from '../command.ts'
import { json, table } from '../output.ts'
import { transferProgress } from '../progress.ts'

const PARTS: [ImagePart, string][] = [['kernel', 'vmlinux'], ['initrd', 'initrd'], ['rootfs', 'rootfs.ext4']]

/** A file as a request body, read as it is sent, with a progress line on stderr. */
function fileBody(file: string, label: string): ReadableStream<Uint8Array> {
  const tick = transferProgress(label, fs.statSync(file).size)
  const stream = fs.createReadStream(file, { highWaterMark: 1024 * 1024 })
  stream.on('data', (chunk) => tick((chunk as Buffer).length))
  stream.on('end', () => tick(0, true))
  return Readable.toWeb(stream) as ReadableStream<Uint8Array>
}

/** Registers an image, uploads its files; an image left without all of them is removed again. */
async function upload(images: Images, name: string, files: Partial<Record<ImagePart, string>>, description: string): Promise<string> {
  for (const [part, file] of Object.entries(files)) if (!fs.existsSync(file)) throw new UsageError(`${part} file ${file} does not exist`)
  const img = await images.create(name, description)
  try {
    for (const [part] of PARTS) {
      const file = files[part]
      if (file) await images.upload(img.id, part, fileBody(file, `${part} ${path.basename(file)}`))
    }
  } catch (err) {
    await images.delete(img.id).catch(() => {})
    throw err
  }
  return img.id
}

export const image: Command = {
  name: 'image',
  usage: [
    'sheesh image ls',
    '       sheesh image default <id>',
    '       sheesh image rm <id>',
    '       sheesh image upload <name> --kernel vmlinux --rootfs rootfs.ext4 [--initrd initrd] [--description TEXT] [--default]',
    '       sheesh image build [--name NAME] [--cache-dir DIR] [--default]   (in a run-dat-sheesh checkout)',
  ].join('\n'),
  summary: 'List, upload, build, delete guest images, or choose the default',
  options: { kernel: { type: 'string' }, initrd: { type: 'string' }, rootfs: { type: 'string' }, description: { type: 'string' }, default: { type: 'boolean' }, name: { type: 'string' }, 'cache-dir': { type: 'string' } },
  async run(args, values, client, out) {
    const images = new Images(client)
    const [verb, arg] = args
    const finish = async (id: string) => {
      if (values.default) await images.setDefault(id)
      const img = await images.get(id)
      out(values.json ? json(img) : `image ${img.name} uploaded: ${img.id}${values.default ? ' (now the default)' : ''}`)
    }
    switch (verb) {
      case 'ls': {
        const list = await images.list()
        return out(values.json ? json(list) : table(list.map((i) => ({ ...i, default: i.isDefault ? '*' : '' })), ['id', 'name', 'default', 'seedStatus', 'createdAt']))
      }
      case 'default':
        await images.setDefault(need(arg, 'an image id'))
        return out(values.json ? json({ id: arg, isDefault: true }) : `${arg} is the default image`)
      case 'rm':
        await images.delete(need(arg, 'an image id'))
        return out(values.json ? json({ id: arg, deleted: true }) : `deleted image ${arg}`)
      case 'upload': {
        if (!values.kernel || !values.rootfs) throw new UsageError('upload needs --kernel and --rootfs (and --initrd when the image has one)')
        const files = { kernel: values.kernel as string, rootfs: values.rootfs as string, ...(values.initrd ? { initrd: values.initrd as string } : {}) }
        return finish(await upload(images, need(arg, 'an image name'), files, (values.description as string | undefined) ?? ''))
      }
      case 'build': {
        // The builder lives in this repository (guest/image), not in the published SDK.
        const { ensureImage } = await import('@rds/guest-image')
        const cacheDir = (values['cache-dir'] as string | undefined) ?? process.env.RDS_CACHE_DIR ?? '/var/cache/run-dat-sheesh'
        let lastStep = ''
        const { dir, manifest, built } = await ensureImage({
          cacheDir,
          onProgress: (p) => {
            if (p.step === lastStep) return
            lastStep = p.step
            process.stderr.write(`[${String(p.percent).padStart(3)}%] ${p.step}${p.detail ? `: ${p.detail}` : ''}\n`)
          },
        })
        process.stderr.write(`image ${manifest.recipe} ${built ? 'built' : 'found in the cache'}: ${dir}\n`)
        const files = Object.fromEntries(PARTS.map(([part, file]) => [part, path.join(dir, file)])) as Record<ImagePart, string>
        return finish(await upload(images, (values.name as string | undefined) ?? `built-${manifest.recipe}`, files, `built by sheesh image build (recipe ${manifest.recipe}, kernel ${manifest.kernelVersion})`))
      }
      default:
        throw new UsageError(`unknown image command ${JSON.stringify(verb ?? '')}`)
    }
  },
}
