// The agent's API as one table: for every route its method and path, what a request carries (a
// JSON body, a query, a tar.gz stream) and what success looks like (its status, and a JSON body
// or a stream). Any other answer of any route is a failure: a 4xx/5xx status with an AgentError
// body. The agent routes and checks requests by this table; the manager sends by it and checks
// every reply against it before reading a field, so the two ends cannot drift apart unnoticed.
import { Type, type Static, type TObject } from 'typebox'
import { FileChmodRequest, FileDeleteRequest, FileEntries, FileEntry, FileGlobRequest, FileListRequest, FileMoveRequest, FilePathRequest, FileReadQuery, FileWatchQuery, FileWriteQuery } from './files.ts'
import { ProcessInfo, ProcessList, ProcessOutputQuery, ProcessRef, ProcessResizeRequest, ProcessSignalRequest, ProcessStartRequest, ProcessStdinQuery } from './processes.ts'
import { NDJSON } from './output-events.ts'
import { AgentPaths, DownloadQuery, ExecRequest, ExecResult, Health, InitReply, InitRequest, RunRequest, RunResult, UploadQuery } from './agent.ts'

/** No body: a GET, or an answer that is only its status. */
export const NoBody = Type.Undefined()
/** A query with no parameters. */
export const NoQuery = Type.Object({})
/** A body that is a gzip-compressed tar stream, which neither end holds whole. */
export const TAR_GZ = 'application/gzip'
/** The same archive uncompressed: a download's reply when asked for format=tar. */
export const TAR = 'application/x-tar'
/** A body that is a file's bytes, streamed. */
export const OCTET_STREAM = 'application/octet-stream'

export const AgentRoutes = {
  /** `statesVersion`: the reply carries the agent's protocolVersion, which the manager checks first. */
  health: { method: 'GET', path: AgentPaths.health, request: NoBody, status: 200, reply: Health, statesVersion: true },
  /** The first request of every session. */
  init: { method: 'POST', path: AgentPaths.init, request: InitRequest, status: 200, reply: InitReply, statesVersion: true },
  exec: { method: 'POST', path: AgentPaths.exec, request: ExecRequest, status: 200, reply: ExecResult, statesVersion: false },
  run: { method: 'POST', path: AgentPaths.run, request: RunRequest, status: 200, reply: RunResult, statesVersion: false },
  /**
   * The reply is a stream of OutputEvent lines (NDJSON) written as output happens, flow-controlled
   * by HTTP/2 (a reader that stops slows the command), ending with exactly one exit or error
   * event. The manager resetting the stream kills the command's whole tree.
   */
  execStream: { method: 'POST', path: AgentPaths.execStream, request: ExecRequest, status: 200, reply: NDJSON, statesVersion: false },
  runStream: { method: 'POST', path: AgentPaths.runStream, request: RunRequest, status: 200, reply: NDJSON, statesVersion: false },
  /** Accepted, not done: the agent asks PID 1 to power off once the answer is out. */
  shutdown: { method: 'POST', path: AgentPaths.shutdown, request: NoBody, status: 202, reply: NoBody, statesVersion: false },
  upload: { method: 'POST', path: AgentPaths.upload, query: UploadQuery, request: TAR_GZ, status: 204, reply: NoBody, statesVersion: false },
  /** The generated peer tree; replaces /workspace/peers, root-owned and read-only. */
  peersInstall: { method: 'POST', path: AgentPaths.peersInstall, query: NoQuery, request: TAR_GZ, status: 204, reply: NoBody, statesVersion: false },
  download: { method: 'GET', path: AgentPaths.download, query: DownloadQuery, request: NoBody, status: 200, reply: TAR_GZ, statesVersion: false },
  /** The file's bytes (or the range's); headers FILE_SIZE_HEADER, FILE_OFFSET_HEADER and content-length. */
  fileRead: { method: 'GET', path: AgentPaths.fileRead, query: FileReadQuery, request: NoBody, status: 200, reply: OCTET_STREAM, statesVersion: false },
  /** Parents created; the bytes land under the final name only once all of them arrived. */
  fileWrite: { method: 'PUT', path: AgentPaths.fileWrite, query: FileWriteQuery, request: OCTET_STREAM, status: 204, reply: NoBody, statesVersion: false },
  fileStat: { method: 'POST', path: AgentPaths.fileStat, request: FilePathRequest, status: 200, reply: FileEntry, statesVersion: false },
  fileList: { method: 'POST', path: AgentPaths.fileList, request: FileListRequest, status: 200, reply: FileEntries, statesVersion: false },
  fileGlob: { method: 'POST', path: AgentPaths.fileGlob, request: FileGlobRequest, status: 200, reply: FileEntries, statesVersion: false },
  fileDelete: { method: 'POST', path: AgentPaths.fileDelete, request: FileDeleteRequest, status: 204, reply: NoBody, statesVersion: false },
  fileMove: { method: 'POST', path: AgentPaths.fileMove, request: FileMoveRequest, status: 204, reply: NoBody, statesVersion: false },
  fileMkdir: { method: 'POST', path: AgentPaths.fileMkdir, request: FilePathRequest, status: 204, reply: NoBody, statesVersion: false },
  fileChmod: { method: 'POST', path: AgentPaths.fileChmod, request: FileChmodRequest, status: 204, reply: NoBody, statesVersion: false },
  /** FileEvent lines until the client leaves (the guest's watcher stops with it). */
  fileWatch: { method: 'GET', path: AgentPaths.fileWatch, query: FileWatchQuery, request: NoBody, status: 200, reply: NDJSON, statesVersion: false },
  /** A background process (processes.ts); answers once it was started. */
  processStart: { method: 'POST', path: AgentPaths.processStart, request: ProcessStartRequest, status: 200, reply: ProcessInfo, statesVersion: false },
  processList: { method: 'GET', path: AgentPaths.processList, request: NoBody, status: 200, reply: ProcessList, statesVersion: false },
  processGet: { method: 'POST', path: AgentPaths.processGet, request: ProcessRef, status: 200, reply: ProcessInfo, statesVersion: false },
  /** NDJSON output events from the replay buffer; with follow, open until the exit event. */
  processOutput: { method: 'GET', path: AgentPaths.processOutput, query: ProcessOutputQuery, request: NoBody, status: 200, reply: NDJSON, statesVersion: false },
  /** Raw bytes written to the process's stdin as they arrive. */
  processStdin: { method: 'POST', path: AgentPaths.processStdin, query: ProcessStdinQuery, request: OCTET_STREAM, status: 204, reply: NoBody, statesVersion: false },
  processSignal: { method: 'POST', path: AgentPaths.processSignal, request: ProcessSignalRequest, status: 204, reply: NoBody, statesVersion: false },
  processResize: { method: 'POST', path: AgentPaths.processResize, request: ProcessResizeRequest, status: 204, reply: NoBody, statesVersion: false },
  /** Kills the process group and everything in its cgroup; the process stays listed as exited. */
  processKill: { method: 'POST', path: AgentPaths.processKill, request: ProcessRef, status: 204, reply: NoBody, statesVersion: false },
} as const

type Routes = typeof AgentRoutes
export type AgentRouteName = keyof Routes

/** Routes whose request and reply are both JSON or nothing: the manager's typed `call`. */
export type AgentCallName = { [R in AgentRouteName]: Routes[R]['request'] extends string ? never : Routes[R]['reply'] extends string ? never : R }[AgentRouteName]
/** Routes whose request body is a stream. */
export type AgentUploadName = { [R in AgentRouteName]: Routes[R]['request'] extends typeof TAR_GZ | typeof OCTET_STREAM ? R : never }[AgentRouteName]
/** Routes asked by a query whose reply body is a stream (archives, file bytes, watch events). */
export type AgentDownloadName = { [R in AgentRouteName]: Routes[R]['reply'] extends string ? (Routes[R] extends { query: TObject } ? R : never) : never }[AgentRouteName]

/** Routes with a JSON request whose reply is a stream of OutputEvents (streamed exec and run). */
export type AgentEventStreamName = { [R in AgentRouteName]: Routes[R]['reply'] extends typeof NDJSON ? (Routes[R] extends { query: TObject } ? never : R) : never }[AgentRouteName]

export type AgentRequest<R extends AgentCallName | AgentEventStreamName> = Static<Routes[R]['request']>
export type AgentReply<R extends AgentCallName> = Static<Routes[R]['reply']>
export type AgentQuery<R extends AgentUploadName | AgentDownloadName> = Static<Routes[R]['query']>

/** `?a=1&b=x` of a stream route's typed query ('' when it has none). */
export function encodeQuery(query: object): string {
  const q = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) if (value !== undefined) q.set(key, String(value))
  const text = q.toString()
  return text ? `?${text}` : ''
}

/**
 * The agent's reading of a query: the keys the route's schema names, as numbers where it wants an
 * integer. Anything else stays text, so the schema check that follows reports it.
 */
export function decodeQuery(schema: TObject, params: URLSearchParams): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, property] of Object.entries(schema.properties)) {
    const value = params.get(key)
    if (value === null) continue
    out[key] = (property as { type?: unknown }).type === 'integer' && /^\d{1,15}$/.test(value) ? Number(value) : value
  }
  return out
}
