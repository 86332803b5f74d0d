// The agent's watch stream (FileEvent lines) as checked events, and one event as E2B's
// FilesystemEvent: names relative to the watched directory, as envd reports them.
import path from 'node:path/posix'
import type { Readable } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'
import { FILE_EVENT_MAX_BYTES, FileEvent, matches } from '@rds/protocol'
import { EventType } from './gen/filesystem_pb.js'

/** The guest's lines, each checked against the schema and bounded in length; others are skipped. */
export async function* fileEventsOf(stream: Readable): AsyncGenerator<FileEvent> {
  const text = new StringDecoder('utf8')
  let partial = ''
  for await (const chunk of stream) {
    partial += text.write(chunk as Buffer)
    const lines = partial.split('\n')
    partial = lines.pop()!
    if (partial.length > FILE_EVENT_MAX_BYTES) throw new Error('the guest sent an over-long watch event')
    for (const line of lines) {
      let ev: unknown
      try {
        ev = JSON.parse(line)
      } catch {
        continue
      }
      if (matches(FileEvent, ev)) yield ev
    }
  }
}

const TYPE_OF: Partial<Record<FileEvent['type'], EventType>> = {
  create: EventType.CREATE,
  write: EventType.WRITE,
  remove: EventType.REMOVE,
}

/** E2B's events for one of ours (a rename is E2B's rename of the old name, then a create of the new). */
export function e2bEventsOf(ev: FileEvent, watchedGuestDir: string): { name: string; type: EventType }[] {
  const name = (p: string) => path.relative(watchedGuestDir, p)
  if (ev.type === 'rename') {
    return [...(ev.from ? [{ name: name(ev.from), type: EventType.RENAME }] : []), ...(ev.path ? [{ name: name(ev.path), type: EventType.CREATE }] : [])]
  }
  const type = TYPE_OF[ev.type]
  return type !== undefined && ev.path ? [{ name: name(ev.path), type }] : []
}
