import { Type, type Static } from 'typebox'

export const UploadQuery = Type.Object({ dest: Type.Optional(Type.String({ description: 'Directory under /workspace (or /tmp) to extract into.' })) })
export type UploadQuery = Static<typeof UploadQuery>
export const DownloadQuery = Type.Object({
  path: Type.Optional(Type.String({ description: 'File or directory under /workspace (or /tmp).' })),
  format: Type.Optional(Type.Union([Type.Literal('tar.gz'), Type.Literal('tar')], { description: 'tar.gz (the default, application/gzip) or tar: the same archive uncompressed (application/x-tar), cheaper for data that does not compress.' })),
})
export type DownloadQuery = Static<typeof DownloadQuery>
