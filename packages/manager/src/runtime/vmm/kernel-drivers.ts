// Whether a kernel can boot our guest without an initrd: the drivers the guest needs before any
// module can be loaded must be built in. A built-in driver leaves its name in the kernel image
// (driver and filesystem names, message prefixes); a modular one does not. This reads the file,
// it never boots it, so a create on such an image fails in milliseconds with a clear message
// instead of a boot timeout.
import fs from 'node:fs'

/** Driver -> byte patterns that only a kernel with it built in contains. */
const NEEDED: ReadonlyArray<[driver: string, patterns: string[]]> = [
  ['virtio_mmio', ['virtio-mmio']],
  ['virtio_blk', ['virtio_blk']],
  ['virtio_console', ['virtio_console']],
  // "virtio_net" alone: type names such as virtio_net_hdr appear in any kernel's BTF.
  ['virtio_net', ['\0virtio_net\0']],
  ['overlay', ['overlayfs']],
]

const cache = new Map<string, string[]>()

/** The drivers the guest needs that `kernel` does not have built in (empty: it can boot without an initrd). */
export async function missingBuiltinDrivers(kernel: string): Promise<string[]> {
  const st = await fs.promises.stat(kernel)
  const key = `${kernel}:${st.ino}:${st.size}:${Math.trunc(st.mtimeMs)}`
  const hit = cache.get(key)
  if (hit) return hit
  const found = new Set<string>()
  const all = NEEDED.flatMap(([driver, patterns]) => patterns.map((p) => ({ driver, bytes: Buffer.from(p, 'latin1') })))
  const overlap = Math.max(...all.map((p) => p.bytes.length))
  let carry = Buffer.alloc(0)
  for await (const chunk of fs.createReadStream(kernel, { highWaterMark: 4 * 1024 * 1024 })) {
    const buf = Buffer.concat([carry, chunk as Buffer])
    for (const p of all) if (!found.has(p.driver) && buf.includes(p.bytes)) found.add(p.driver)
    if (found.size === NEEDED.length) break
    carry = buf.subarray(Math.max(0, buf.length - overlap))
  }
  const missing = NEEDED.map(([d]) => d).filter((d) => !found.has(d))
  cache.set(key, missing)
  return missing
}
