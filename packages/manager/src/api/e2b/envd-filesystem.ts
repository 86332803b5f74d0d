// envd's filesystem.Filesystem service (E2B's filesystem.proto) on our file API
// (services/vm-files.ts). Paths go through home-paths.ts both ways; the agent confines them.
import crypto from 'node:crypto'
import type { Readable } from 'node:stream'
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from '@connectrpc/connect'
import { timestampFromDate } from '@bufbuild/protobuf/wkt'
import type { FileEntry } from '@rds/protocol'
import type { VmFilesService } from '../../services/vm-files.ts'
import { Filesystem, FileType, type FilesystemEvent } from './gen/filesystem_pb.js'
import { connectCall } from './connect-errors.ts'
import { e2bPathOf, guestPathOf } from './home-paths.ts'
import { keepaliveIntervalMs, withKeepalive } from './keepalive.ts'
import { sandboxIdOf } from './sandbox-header.ts'
import { e2bEventsOf, fileEventsOf } from './watch-events.ts'

const TYPE_OF: Record<FileEntry['type'], FileType> = { file: FileType.FILE, dir: FileType.DIRECTORY, symlink: FileType.SYMLINK, other: FileType.UNSPECIFIED }
/** Polled watchers (CreateWatcher) keep at most this many events between two reads, and a sandbox this many watchers. */
const MAX_BUFFERED_EVENTS = 1000
const MAX_WATCHERS = 64
const ENDED_WATCHER_KEPT_MS = 60_000

function permissionsOf(type: FileEntry['type'], mode: number): string {
  const rwx = (bits: number) => `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${bits & 1 ? 'x' : '-'}`
  return `${type === 'dir' ? 'd' : type === 'symlink' ? 'L' : '-'}${rwx(mode >> 6)}${rwx(mode >> 3)}${rwx(mode)}`
}

export function entryInfoOf(e: FileEntry) {
  const mode = parseInt(e.mode, 8) & 0o777
  return {
    name: e.name,
    type: TYPE_OF[e.type],
    path: e2bPathOf(e.path),
    size: BigInt(e.size),
    mode,
    permissions: permissionsOf(e.type, mode),
    owner: 'user',
    group: 'user',
    modifiedTime: timestampFromDate(new Date(e.mtime)),
    metadata: {},
  }
}

interface Watcher {
  sandboxId: string
  stream: Readable
  events: Array<{ name: string; type: FilesystemEvent['type'] }>
  failed?: string
}

export function envdFilesystemService(files: VmFilesService) {
  const watchers = new Map<string, Watcher>()

  /** The watch, once the guest says it is in place (events before that may be missed, as in envd). */
  async function openWatch(id: string, guestDir: string, recursive: boolean) {
    const stream = await connectCall(() => files.watch(id, guestDir, recursive))
    const events = fileEventsOf(stream)
    const first = await events.next()
    if (first.done || first.value.type !== 'ready') {
      stream.destroy()
      throw new ConnectError('the watch could not be set up', Code.Internal)
    }
    return { stream, events }
  }

  function watcherOf(ctx: HandlerContext, watcherId: string): Watcher {
    const w = watchers.get(watcherId)
    if (!w || w.sandboxId !== sandboxIdOf(ctx)) throw new ConnectError(`no watcher ${watcherId}`, Code.NotFound)
    return w
  }

  return (router: ConnectRouter) =>
    router.service(Filesystem, {
      async stat(req, ctx) {
        const id = sandboxIdOf(ctx)
        return { entry: entryInfoOf(await connectCall(() => files.stat(id, guestPathOf(req.path)))) }
      },

      async makeDir(req, ctx) {
        const id = sandboxIdOf(ctx)
        const p = guestPathOf(req.path)
        // Our mkdir is mkdir -p; E2B's makeDir tells an existing directory apart (the SDK answers false).
        const existing = await files.stat(id, p).catch(() => undefined)
        if (existing) throw new ConnectError(`${req.path} already exists`, Code.AlreadyExists)
        await connectCall(() => files.mkdir(id, p))
        return { entry: entryInfoOf(await connectCall(() => files.stat(id, p))) }
      },

      async move(req, ctx) {
        const id = sandboxIdOf(ctx)
        const to = guestPathOf(req.destination)
        await connectCall(() => files.move(id, guestPathOf(req.source), to))
        return { entry: entryInfoOf(await connectCall(() => files.stat(id, to))) }
      },

      async listDir(req, ctx) {
        const id = sandboxIdOf(ctx)
        const entries = await connectCall(() => files.list(id, guestPathOf(req.path), req.depth || 1))
        return { entries: entries.map(entryInfoOf) }
      },

      async remove(req, ctx) {
        const id = sandboxIdOf(ctx)
        await connectCall(() => files.remove(id, guestPathOf(req.path), true))
        return {}
      },

      async *watchDir(req, ctx) {
        const id = sandboxIdOf(ctx)
        const dir = guestPathOf(req.path)
        const { stream, events } = await openWatch(id, dir, req.recursive)
        const stop = () => stream.destroy()
        ctx.signal.addEventListener('abort', stop, { once: true })
        try {
          yield { event: { case: 'start' as const, value: {} } }
          const mapped = (async function* () {
            for await (const ev of events) for (const e of e2bEventsOf(ev, dir)) yield { event: { case: 'filesystem' as const, value: e } }
          })()
          yield* withKeepalive<{ event: { case: 'filesystem'; value: { name: string; type: FilesystemEvent['type'] } } | { case: 'keepalive'; value: object } }>(
            mapped,
            keepaliveIntervalMs(ctx.requestHeader.get('keepalive-ping-interval')),
            () => ({ event: { case: 'keepalive', value: {} } }),
          )
        } finally {
          ctx.signal.removeEventListener('abort', stop)
          stream.destroy()
        }
      },

      async createWatcher(req, ctx) {
        const id = sandboxIdOf(ctx)
        if ([...watchers.values()].filter((w) => w.sandboxId === id).length >= MAX_WATCHERS) throw new ConnectError(`at most ${MAX_WATCHERS} watchers per sandbox`, Code.ResourceExhausted)
        const dir = guestPathOf(req.path)
        const { stream, events } = await openWatch(id, dir, req.recursive)
        const watcherId = crypto.randomUUID()
        const w: Watcher = { sandboxId: id, stream, events: [] }
        watchers.set(watcherId, w)
        void (async () => {
          try {
            for await (const ev of events) {
              w.events.push(...e2bEventsOf(ev, dir))
              if (w.events.length > MAX_BUFFERED_EVENTS) w.events.splice(0, w.events.length - MAX_BUFFERED_EVENTS)
            }
            w.failed = 'the watched directory or its sandbox went away'
          } catch (err) {
            w.failed = (err as Error).message
          }
          // An ended watch answers its reader once more with why, then is forgotten (a sandbox
          // deleted without RemoveWatcher must not leave its watchers here for good).
          setTimeout(() => watchers.delete(watcherId), ENDED_WATCHER_KEPT_MS).unref()
        })()
        return { watcherId }
      },

      async getWatcherEvents(req, ctx) {
        const w = watcherOf(ctx, req.watcherId)
        if (w.failed) throw new ConnectError(`the watch ended: ${w.failed}`, Code.Unavailable)
        return { events: w.events.splice(0) }
      },

      async removeWatcher(req, ctx) {
        const w = watcherOf(ctx, req.watcherId)
        w.stream.destroy()
        watchers.delete(req.watcherId)
        return {}
      },
    })
}
