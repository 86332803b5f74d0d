import { Type, type Static } from 'typebox'

export const PortParams = Type.Object({
  id: Type.String({ maxLength: 128 }),
  port: Type.Integer({ minimum: 1, maximum: 65535, description: 'A TCP port inside the VM.' }),
})
export type PortParams = Static<typeof PortParams>

export const PreviewUrl = Type.Object({
  url: Type.String({ description: 'http(s)://<port>-<vmId>.<PREVIEW_DOMAIN>[:<port>]/?rds_preview_token=…: opening it sets a cookie for that host and redirects to / without the token.' }),
  expiresAt: Type.String({ format: 'date-time', description: 'When the token (and the cookie it becomes) stops opening the port (PREVIEW_TOKEN_TTL_SECONDS).' }),
  public: Type.Boolean({ description: 'Whether the port is served without a token (POST …/public).' }),
})
export type PreviewUrl = Static<typeof PreviewUrl>

export const SetPortPublicBody = Type.Object({ public: Type.Boolean({ description: 'true: anyone who knows the host may open the port; false: the token, its cookie or an API key again.' }) }, { additionalProperties: false })
export type SetPortPublicBody = Static<typeof SetPortPublicBody>

export const PortPublicState = Type.Object({
  port: Type.Integer(),
  public: Type.Boolean(),
  url: Type.String({ description: 'The preview address without a token (opens only while the port is public).' }),
})
export type PortPublicState = Static<typeof PortPublicState>
