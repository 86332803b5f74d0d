// The file API of a running VM: every operation is one request to its agent, which confines the
// path and has the user's file worker do it (docs/architecture.md, "The file API"). Bytes stream
// both ways under HTTP/2 flow control; nothing here holds a file. What the agent answers is
// checked: the route's schema for JSON replies, the announced length and range for bytes.
import type { Readable } from 'node:stream'
import { FILE_OFFSET_HEADER, FILE_SIZE_HEADER, formatRangeSpec, type AgentErrorCode, type FileEntry, type RangeSpec } from '@rds/protocol'
import { ApiError, Errors } from '../errors.ts'
import { AgentRefusedError } from '../runtime/agent/faults.ts'
import type { Supervisor } from '../runtime/supervisor/supervisor.ts'
import { agentFault } from './agent-fault.ts'
import { assertState } from './vm-lifecycle.ts'
import type { VmLookup } from './vm-lookup.ts'

/** The file API's refusals keep the agent's code with a status chosen here, never the guest's. */
const STATUS_OF: Partial<Record<AgentErrorCode, number>> = {
  invalid_request: 400,
  path_not_allowed: 400,
  too_many_entries: 400,
  permission_denied: 403,
  path_not_found: 404,
  not_a_directory: 409,
  is_a_directory: 409,
  directory_not_empty: 409,
  already_exists: 409,
  range_not_satisfiable: 416,
  no_space: 507,
}

const CALL_TIMEOUT_MS = 60_000
/** Until the agent starts answering a read or a watch (the bytes themselves are not timed). */
const OPEN_TIMEOUT_MS = 60_000
/** A write's whole exchange: an upload of many GiB over a slow link is still bounded. */
const WRITE_TIMEOUT_MS = 6 * 60 * 60_000

export interface FileRead {
  body: Readable
  /** Bytes that follow, exactly. */
  length: number
  /** Of the whole file. */
  size: number
  /** Where the bytes start. */
  offset: number
}

export function createVmFilesService(deps: { vms: VmLookup; machines: Supervisor }) {
  async function agentOf(id: string) {
    const vm = await deps.vms.get(id)
    assertState(vm, 'files')
    const m = deps.machines.get(id)
    if (!m) throw Errors.vmStateConflict(`VM must be RUNNING to use its files (state=${vm.state})`)
    return m.agent
  }

  async function ask<T>(id: string, p: Promise<T>): Promise<T> {
    try {
      return await p
    } catch (err) {
      if (err instanceof AgentRefusedError && STATUS_OF[err.code] !== undefined) throw new ApiError(STATUS_OF[err.code]!, err.code, err.agentMessage)
      throw agentFault(id, err)
    }
  }

  const headerInt = (v: string | string[] | undefined): number | undefined => (typeof v === 'string' && /^\d{1,15}$/.test(v) ? Number(v) : undefined)

  return {
    async read(id: string, path: string, range: RangeSpec | undefined): Promise<FileRead> {
      const agent = await agentOf(id)
      const { body, headers } = await ask(id, agent.openStream('fileRead', { path, range: range && formatRangeSpec(range) }, OPEN_TIMEOUT_MS))
      const length = headerInt(headers['content-length'])
      const size = headerInt(headers[FILE_SIZE_HEADER])
      const offset = headerInt(headers[FILE_OFFSET_HEADER])
      // The guest states these; they are only passed on once they add up.
      if (length === undefined || size === undefined || offset === undefined || offset + length > size || (range === undefined && (offset !== 0 || length !== size))) {
        body.destroy()
        throw Errors.agentReplyInvalid(id, 'fileRead', 'missing or inconsistent length headers')
      }
      return { body, length, size, offset }
    },

    async write(id: string, path: string, mode: string | undefined, body: Readable): Promise<void> {
      const agent = await agentOf(id)
      await ask(id, agent.upload('fileWrite', { path, mode }, body, WRITE_TIMEOUT_MS))
    },

    async stat(id: string, path: string): Promise<FileEntry> {
      return ask(id, (await agentOf(id)).call('fileStat', { path }, CALL_TIMEOUT_MS))
    },
    async list(id: string, path: string, depth: number | undefined): Promise<FileEntry[]> {
      return (await ask(id, (await agentOf(id)).call('fileList', { path, depth }, CALL_TIMEOUT_MS))).entries
    },
    async glob(id: string, pattern: string): Promise<FileEntry[]> {
      return (await ask(id, (await agentOf(id)).call('fileGlob', { pattern }, CALL_TIMEOUT_MS))).entries
    },
    async remove(id: string, path: string, recursive: boolean): Promise<void> {
      await ask(id, (await agentOf(id)).call('fileDelete', { path, recursive }, CALL_TIMEOUT_MS))
    },
    async move(id: string, from: string, to: string): Promise<void> {
      await ask(id, (await agentOf(id)).call('fileMove', { from, to }, CALL_TIMEOUT_MS))
    },
    async mkdir(id: string, path: string): Promise<void> {
      await ask(id, (await agentOf(id)).call('fileMkdir', { path }, CALL_TIMEOUT_MS))
    },
    async chmod(id: string, path: string, mode: string): Promise<void> {
      await ask(id, (await agentOf(id)).call('fileChmod', { path, mode }, CALL_TIMEOUT_MS))
    },

    /** FileEvent lines (NDJSON) until the returned stream is destroyed, which stops the guest's watcher. */
    async watch(id: string, path: string, recursive: boolean): Promise<Readable> {
      const agent = await agentOf(id)
      return (await ask(id, agent.openStream('fileWatch', { path, recursive: recursive ? 'true' : 'false' }, OPEN_TIMEOUT_MS))).body
    },
  }
}
export type VmFilesService = ReturnType<typeof createVmFilesService>
