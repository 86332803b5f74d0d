// The file API's shapes on the agent channel (and, for entries and watch events, on the public
// API too: one schema serves both ends, the OpenAPI document and the clients). Paths are always
// stated the way the caller names them (/workspace/…), never as the guest resolved them.
import { Type, type Static } from 'typebox'

export const FileType = Type.Union([Type.Literal('file'), Type.Literal('dir'), Type.Literal('symlink'), Type.Literal('other')])
export type FileType = Static<typeof FileType>

export const FileEntry = Type.Object(
  {
    name: Type.String(),
    /** Absolute, under /workspace. */
    path: Type.String(),
    type: FileType,
    /** Bytes (a symlink: the length of its target text). */
    size: Type.Integer({ minimum: 0 }),
    /** Permission bits as an octal string, e.g. "644". */
    mode: Type.String({ pattern: '^[0-7]{3,4}$' }),
    /** ISO 8601. */
    mtime: Type.String(),
  },
  { additionalProperties: false },
)
export type FileEntry = Static<typeof FileEntry>

/** Permission bits as octal text ("644", "0755"): no setuid, setgid or sticky bit. */
export const FileMode = Type.String({ pattern: '^0?[0-7]{3}$', description: 'Permission bits as an octal string, e.g. "644" or "0755" (no setuid/setgid/sticky bits).' })

/** Listing depth: 1 is the directory's own entries. */
export const MAX_LIST_DEPTH = 16
/** Most entries a listing or a glob answers with; more is the error too_many_entries, never a silent cut. */
export const MAX_LIST_ENTRIES = 10_000

export const FilePathRequest = Type.Object({ path: Type.String() }, { additionalProperties: false })
export type FilePathRequest = Static<typeof FilePathRequest>
export const FileListRequest = Type.Object({ path: Type.String(), depth: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LIST_DEPTH })) }, { additionalProperties: false })
export type FileListRequest = Static<typeof FileListRequest>
export const FileGlobRequest = Type.Object({ pattern: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false })
export type FileGlobRequest = Static<typeof FileGlobRequest>
export const FileDeleteRequest = Type.Object({ path: Type.String(), recursive: Type.Optional(Type.Boolean()) }, { additionalProperties: false })
export type FileDeleteRequest = Static<typeof FileDeleteRequest>
export const FileMoveRequest = Type.Object({ from: Type.String(), to: Type.String() }, { additionalProperties: false })
export type FileMoveRequest = Static<typeof FileMoveRequest>
export const FileChmodRequest = Type.Object({ path: Type.String(), mode: FileMode }, { additionalProperties: false })
export type FileChmodRequest = Static<typeof FileChmodRequest>
export const FileEntries = Type.Object({ entries: Type.Array(FileEntry, { maxItems: MAX_LIST_ENTRIES }) }, { additionalProperties: false })
export type FileEntries = Static<typeof FileEntries>

/**
 * Query of GET /files/read. `range`: the byte range as an HTTP Range header spells it without the
 * unit ("0-99", "100-", "-100"); the agent resolves it against the file's size.
 */
export const FileReadQuery = Type.Object({ path: Type.String(), range: Type.Optional(Type.String({ maxLength: 64 })) })
export type FileReadQuery = Static<typeof FileReadQuery>
/** Headers of a read's answer: the total size, and where the bytes sent start. */
export const FILE_SIZE_HEADER = 'x-rds-file-size'
export const FILE_OFFSET_HEADER = 'x-rds-file-offset'

/**
 * Trailer of every streamed request body (uploads): the number of bytes the sender sent, once the
 * body really ended. A body without it was abandoned, however it ended on the wire (Node ends a
 * stream before resetting it), so a write is committed only with it.
 */
export const BODY_BYTES_TRAILER = 'x-rds-body-bytes'

/** Query of PUT /files/write (body: the file's bytes). Without `mode`, a replaced file keeps its mode; a new one gets 644. */
export const FileWriteQuery = Type.Object({ path: Type.String(), mode: Type.Optional(FileMode) })
export type FileWriteQuery = Static<typeof FileWriteQuery>

export const FileWatchQuery = Type.Object({ path: Type.String(), recursive: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])) })
export type FileWatchQuery = Static<typeof FileWatchQuery>

/**
 * One watch event. `ready` comes first, once the watch is in place (actions before it may be
 * missed); `overflow` says events were dropped because the reader fell behind. `rename` is a
 * remove and a create the guest saw together (`from` is the old path).
 */
export const FileEvent = Type.Object(
  {
    type: Type.Union([Type.Literal('ready'), Type.Literal('create'), Type.Literal('write'), Type.Literal('remove'), Type.Literal('rename'), Type.Literal('overflow')]),
    path: Type.Optional(Type.String()),
    from: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
)
export type FileEvent = Static<typeof FileEvent>
/** Longest event line either end reads: paths are at most PATH_MAX (4096) bytes each. */
export const FILE_EVENT_MAX_BYTES = 16 * 1024
