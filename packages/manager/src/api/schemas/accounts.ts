import { Type, type Static } from 'typebox'

export const LoginBody = Type.Object({ email: Type.String({ maxLength: 320 }), password: Type.String({ maxLength: 1024 }) }, { additionalProperties: false })
export type LoginBody = Static<typeof LoginBody>

export const AdminSessionPublic = Type.Object({
  email: Type.String(),
  csrfToken: Type.String({ description: 'Send it as X-CSRF-Token on every request that changes state with this session.' }),
  expiresAt: Type.String({ format: 'date-time', description: 'The absolute end of the session (it also ends after SESSION_IDLE_MINUTES without a request).' }),
})

export const ApiKeyPublic = Type.Object({
  id: Type.String(),
  name: Type.String(),
  prefix: Type.String({ description: 'The visible start of the key (rds_<12 hex>), to tell keys apart.' }),
  createdAt: Type.String({ format: 'date-time' }),
  createdBy: Type.Union([Type.String(), Type.Null()]),
  expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  revokedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null(), ], { description: 'Updated at most once a minute.' }),
})
export type ApiKeyPublic = Static<typeof ApiKeyPublic>

export const MintApiKeyBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    expiresAt: Type.Optional(Type.Union([Type.String({ maxLength: 64, description: 'A date-time in the future; absent or null: never expires.' }), Type.Null()])),
    format: Type.Optional(Type.Union([Type.Literal('rds'), Type.Literal('e2b')], { description: 'rds (default): `rds_<12 hex>_<32 base64url>`; e2b: `e2b_<40 hex>`, the shape some E2B SDK versions insist on (docs/e2b.md).' })),
  },
  { additionalProperties: false },
)
export type MintApiKeyBody = Static<typeof MintApiKeyBody>

export const MintedApiKey = Type.Object({
  ...ApiKeyPublic.properties,
  apiKey: Type.String({ description: 'The whole key, shown this once: only its hash is kept.' }),
})
