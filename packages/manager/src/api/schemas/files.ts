import { Type, type Static } from 'typebox'

export const UploadQuery = Type.Object({ dest: Type.Optional(Type.String({ description: 'Directory under /workspace (or /tmp) to extract into.' })) })
export type UploadQuery = Static<typeof UploadQuery>
export const DownloadQuery = Type.Object({ path: Type.Optional(Type.String({ description: 'File or directory under /workspace (or /tmp).' })) })
export type DownloadQuery = Static<typeof DownloadQuery>
