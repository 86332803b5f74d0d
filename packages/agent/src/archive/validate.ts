// Reads a whole tar (or tar.gz) before anything is extracted and refuses what the extraction must never
// see. Extraction itself runs as the unprivileged user, so this is defence in depth plus clear
// errors; it is not the only thing standing between an archive and root.
import type { Readable } from 'node:stream'
import { walkTar, type ArchiveFormat } from '@rds/protocol'
import { AgentFailure } from '../errors.ts'

export interface ArchiveLimits {
  maxEntries: number
  /** Sum of entry sizes (uncompressed payload). */
  maxBytes: number
}

export interface ArchiveSummary {
  entries: number
  bytes: number
}

const REFUSED_TYPES: Record<string, string> = {
  symlink: 'a symbolic link',
  link: 'a hard link',
  'character-device': 'a character device',
  'block-device': 'a block device',
  fifo: 'a FIFO',
}

export function checkEntryName(name: string): void {
  const shown = JSON.stringify(name)
  if (name === '' || name.includes('\0')) throw new AgentFailure('archive_invalid', `archive entry ${shown} has an empty or invalid name`)
  if (name.startsWith('/')) throw new AgentFailure('archive_invalid', `archive entry ${shown} has an absolute path`)
  if (name.split('/').includes('..')) throw new AgentFailure('archive_invalid', `archive entry ${shown} contains a '..' component`)
}

export function checkEntryType(name: string, type: string | null | undefined): void {
  if (type === 'file' || type === 'contiguous-file' || type === 'directory') return
  const shown = JSON.stringify(name)
  const refused = type ? REFUSED_TYPES[type] : undefined
  if (refused) throw new AgentFailure('archive_invalid', `archive entry ${shown} is ${refused}; only files and directories are allowed`)
  throw new AgentFailure('archive_invalid', `archive entry ${shown} has an unsupported type (${type ?? 'unknown'})`)
}

export async function validateArchive(input: Readable, limits: ArchiveLimits, format: ArchiveFormat = 'tar.gz'): Promise<ArchiveSummary> {
  let entries = 0
  let bytes = 0
  try {
    await walkTar(input, { gzip: format === 'tar.gz' }, (entry) => {
      entries++
      if (entries > limits.maxEntries) throw new AgentFailure('archive_too_large', `archive has more than ${limits.maxEntries} entries`)
      checkEntryName(entry.name)
      checkEntryType(entry.name, entry.type)
      bytes += entry.size
      if (bytes > limits.maxBytes) throw new AgentFailure('archive_too_large', `archive expands to more than ${limits.maxBytes} bytes`)
    })
  } catch (e) {
    if (e instanceof AgentFailure) throw e
    throw new AgentFailure('archive_invalid', `unreadable ${format} archive: ${(e as Error).message}`)
  }
  return { entries, bytes }
}
