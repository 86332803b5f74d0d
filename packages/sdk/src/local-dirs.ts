// Local directories as tar.gz streams, for `files.upload(dir, dest)` and `files.download(path, dir)`
// on runtimes with a file system and a `tar` program (Node, Deno, Bun). The node: modules are
// loaded only when used, by a name the type checker does not follow, so the SDK keeps importing
// (and type-checking) where they do not exist, like a browser; packing is the system's tar.
import { RdsConnectionError } from './errors.ts'

/** The few parts of a spawned tar this file uses. */
interface Tar {
  stdin: { write(b: Uint8Array): boolean; end(): void; once(ev: string, fn: (...a: unknown[]) => void): void } | null
  stdout: unknown
  stderr: { on(ev: 'data', fn: (c: Uint8Array) => void): void } | null
  once(ev: 'error', fn: (e: Error) => void): void
  once(ev: 'close', fn: (code: number | null) => void): void
  kill(): void
}
interface NodeParts {
  spawn(cmd: string, args: string[], o: { stdio: string[] }): Tar
  toWeb(readable: unknown): ReadableStream<Uint8Array>
  isDirectory(path: string): boolean
  mkdirp(path: string): void
}

const load = (name: string): Promise<Record<string, any>> => import(name)

async function node(): Promise<NodeParts> {
  try {
    const [cp, stream, fs] = await Promise.all([load('node:child_process'), load('node:stream'), load('node:fs')])
    return {
      spawn: (cmd, args, o) => cp.spawn(cmd, args, o),
      toWeb: (r) => stream.Readable.toWeb(r),
      isDirectory: (p) => fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() === true,
      mkdirp: (p) => fs.mkdirSync(p, { recursive: true }),
    }
  } catch {
    throw new Error('Local directories need a runtime with node:child_process (Node, Deno or Bun); pass tar.gz bytes instead')
  }
}

function ended(tar: Tar, what: string): Promise<void> {
  let err = ''
  tar.stderr?.on('data', (c) => (err += new TextDecoder().decode(c)))
  return new Promise<void>((resolve, reject) => {
    tar.once('error', (e) => reject(new Error(`cannot run tar: ${e.message}`)))
    tar.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`tar could not ${what} (exit ${code}): ${err.trim()}`))))
  })
}

/** `dir`'s contents as a tar.gz stream, and a promise of tar's end (rejects if tar failed). */
export async function packDir(dir: string): Promise<{ body: ReadableStream<Uint8Array>; done: Promise<void> }> {
  const n = await node()
  if (!n.isDirectory(dir)) throw new Error(`${dir} is not a directory`)
  const tar = n.spawn('tar', ['-czf', '-', '-C', dir, '.'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const done = ended(tar, `pack ${dir}`)
  done.catch(() => {})
  return { body: n.toWeb(tar.stdout), done }
}

/** Unpacks a tar.gz stream into `dir` (made if missing). */
export async function unpackTo(archive: ReadableStream<Uint8Array>, dir: string): Promise<void> {
  const n = await node()
  n.mkdirp(dir)
  const tar = n.spawn('tar', ['-xzf', '-', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'] })
  const done = ended(tar, `unpack into ${dir}`)
  const stdin = tar.stdin!
  // A tar that ends early (a broken archive) closes its stdin: its error is the exit code's to tell.
  stdin.once('error', () => {})
  try {
    for await (const chunk of archive as unknown as AsyncIterable<Uint8Array>) {
      if (!stdin.write(chunk)) await Promise.race([new Promise((r) => stdin.once('drain', r)), done])
    }
  } catch (e) {
    tar.kill()
    await done.catch(() => {})
    throw new RdsConnectionError(`the download broke off: ${(e as Error).message}`, { cause: e })
  }
  stdin.end()
  await done
}
