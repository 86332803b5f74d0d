// Public shapes of the file API (GET/PUT/DELETE /v1/vms/:id/files and its sub-routes). Entries
// and watch events are the protocol's own schemas: the agent answers with them and the manager
// passes them on after checking them.
import { FileEntry, FileEvent, FileMode, MAX_LIST_DEPTH } from '@rds/protocol'
import { Type, type Static } from 'typebox'

const Path = Type.String({ minLength: 1, maxLength: 4096, description: 'Under /workspace: absolute (/workspace/a.txt) or relative to it (a.txt).' })

export const FilePathQuery = Type.Object({ path: Path })
export type FilePathQuery = Static<typeof FilePathQuery>
export const FileDirQuery = Type.Object({ path: Type.Optional({ ...Path, description: 'Directory under /workspace (default /workspace).' }) })
export type FileDirQuery = Static<typeof FileDirQuery>
export const FileWriteQuery = Type.Object({ path: Path, mode: Type.Optional(FileMode) })
export type FileWriteQuery = Static<typeof FileWriteQuery>
export const FileDeleteQuery = Type.Object({ path: Path, recursive: Type.Optional(Type.Boolean({ description: 'Required to delete a non-empty directory (409 directory_not_empty without it).' })) })
export type FileDeleteQuery = Static<typeof FileDeleteQuery>
export const FileListQuery = Type.Object({
  path: Type.Optional({ ...Path, description: 'Directory under /workspace (default /workspace).' }),
  depth: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LIST_DEPTH, description: `1 (default): the directory's own entries; n: n levels down (at most ${MAX_LIST_DEPTH}). Symbolic links are listed, never followed.` })),
})
export type FileListQuery = Static<typeof FileListQuery>
export const FileGlobQuery = Type.Object({ pattern: Type.String({ minLength: 1, maxLength: 4096, description: 'A glob under /workspace (`**/*.ts`, `/workspace/src/*.{js,ts}`); `..` is refused.' }) })
export type FileGlobQuery = Static<typeof FileGlobQuery>
export const FileWatchQuery = Type.Object({
  path: Type.Optional({ ...Path, description: 'Directory (or file) under /workspace to watch (default /workspace).' }),
  recursive: Type.Optional(Type.Boolean({ description: 'Watch subdirectories too (default true).' })),
})
export type FileWatchQuery = Static<typeof FileWatchQuery>

export const FileMoveBody = Type.Object({ from: Path, to: Path })
export type FileMoveBody = Static<typeof FileMoveBody>
export const FileMkdirBody = Type.Object({ path: Path })
export type FileMkdirBody = Static<typeof FileMkdirBody>
export const FileChmodBody = Type.Object({ path: Path, mode: FileMode })
export type FileChmodBody = Static<typeof FileChmodBody>

export { FileEntry, FileEvent }
export const FileList = Type.Array(FileEntry)
