// What a consumer with sourceMode "mounted" may see of its provider's /workspace. The provider's
// archive is read on the host with a tar parser (nothing extracted to disk) and only regular files
// that pass every rule below are kept:
//   - no hidden entry (a path component starting with "."), except the manifest dir .rds-peer;
//     this drops .env*, .git, .ssh, .aws, .npmrc, .netrc, .config, caches and the like;
//   - no dotenv-style or key/credential file or directory by name (any path segment): *.env, *.pem,
//     *.key, *.p12, *.pfx, *.jks, *.keystore, id_rsa*, id_dsa*, id_ecdsa*, id_ed25519*, and names
//     containing "secret", "credential" or "token";
//   - no node_modules, and not the provider's own /workspace/peers (its links are its own);
//   - no file that contains one of the provider's secretEnv values verbatim;
//   - no symlink, hard link or device; at most MAX_SOURCE_BYTES in total and MAX_FILE_BYTES each.
// The copy is a snapshot taken at link/sync time, not a live view.
import type { Readable } from 'node:stream'
import zlib from 'node:zlib'
import { walkTar } from '@rds/protocol'
import tar from 'tar-stream'

const MAX_SOURCE_BYTES = 32 * 1024 * 1024
const MAX_FILE_BYTES = 4 * 1024 * 1024
const MAX_ENTRIES = 20_000
/** The provider's agent streams the archive; one that trickles forever must not hold a link request forever. */
const ARCHIVE_DEADLINE_MS = 120_000

const SECRET_NAME = /(^id_(rsa|dsa|ecdsa|ed25519))|(\.(env|pem|key|p12|pfx|jks|keystore)$)|secret|credential|token/i

/** Whether a provider path (relative to /workspace) may be copied to a consumer. */
export function sourcePathAllowed(rel: string): boolean {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.')
  if (parts.length === 0) return false
  if (parts[0] === 'peers') return false
  // Every segment, directories too: `secrets/db.json` or `credentials/prod/x` hide what they hold.
  for (const p of parts) {
    if (p.startsWith('.') && p !== '.rds-peer') return false
    if (p === 'node_modules') return false
    if (SECRET_NAME.test(p)) return false
  }
  return true
}

/** Reads a stream to its end (always, so a tar entry is fully consumed); undefined if over `max`. */
async function readAll(stream: AsyncIterable<Buffer>, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = []
  let n = 0
  for await (const c of stream) {
    n += c.length
    if (n <= max) chunks.push(c)
  }
  return n > max ? undefined : Buffer.concat(chunks)
}

/** Parses a plain tar (a download with format=tar: nothing to compress on one side and inflate on the other) and hands each regular file (name without "./") to `onFile`. */
export async function eachTarFile(input: Readable, onFile: (name: string, size: number, read: () => Promise<Buffer | undefined>) => Promise<void>, maxEntries = MAX_ENTRIES, deadlineMs = ARCHIVE_DEADLINE_MS): Promise<void> {
  const late = setTimeout(() => input.destroy(new Error(`provider archive not read within ${deadlineMs} ms`)), deadlineMs)
  try {
    await readTar(input, onFile, maxEntries)
  } finally {
    clearTimeout(late)
  }
}

async function readTar(input: Readable, onFile: (name: string, size: number, read: () => Promise<Buffer | undefined>) => Promise<void>, maxEntries: number): Promise<void> {
  let entries = 0
  await walkTar(input, { gzip: false }, async (entry) => {
    if (++entries > maxEntries) throw new Error(`more than ${maxEntries} entries`)
    if (entry.type !== 'file' && entry.type !== 'contiguous-file') return
    let read: Promise<Buffer | undefined> | undefined
    await onFile(entry.name.replace(/^(\.\/)+/, ''), entry.size, () => (read ??= readAll(entry.body, MAX_FILE_BYTES)))
    if (read) await read
  })
}

/** The sanitized copy of a provider workspace archive (plain tar): relative path -> content. */
export async function sanitizedSource(input: Readable, secretValues: string[]): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>()
  const needles = secretValues.filter((v) => v.length >= 4).map((v) => Buffer.from(v))
  let total = 0
  await eachTarFile(input, async (name, size, read) => {
    if (!sourcePathAllowed(name) || size > MAX_FILE_BYTES) return
    if (total + size > MAX_SOURCE_BYTES) return
    const data = await read()
    if (!data || needles.some((n) => data.includes(n))) return
    total += data.length
    out.set(name, data)
  })
  return out
}

/** Packs files (relative paths) into a tar.gz: regular files 0644 and their directories only. */
export async function packTree(files: Map<string, string | Buffer>): Promise<Buffer> {
  const pack = tar.pack()
  const gz = zlib.createGzip()
  const done = readAll(pack.pipe(gz), Number.MAX_SAFE_INTEGER)
  const dirs = new Set<string>()
  for (const [name, content] of files) {
    const parts = name.split('/')
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/')
      if (dirs.has(d)) continue
      dirs.add(d)
      pack.entry({ name: `${d}/`, type: 'directory', mode: 0o755 })
    }
    pack.entry({ name, type: 'file', mode: 0o644 }, typeof content === 'string' ? Buffer.from(content) : content)
  }
  pack.finalize()
  return (await done)!
}
