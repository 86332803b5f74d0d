import { Type, type Static } from 'typebox'

const SourceMode = Type.Union([Type.Literal('hidden'), Type.Literal('mounted')], {
  description:
    'hidden (default): manifest, README and proxies only. mounted: also a sanitized read-only copy of the provider\'s /workspace under /workspace/peers/<alias>/source/ (no hidden files, dotenv/key/credential files, node_modules, or files containing the provider\'s secretEnv values; copied at link/sync time).',
})

export const PeerLinkInput = Type.Object(
  {
    alias: Type.String({ maxLength: 64, description: 'Name under /workspace/peers (^[A-Za-z0-9_-]+$), unique per VM.' }),
    vmId: Type.String({ maxLength: 128, description: 'The provider VM.' }),
    sourceMode: Type.Optional(SourceMode),
  },
  { additionalProperties: false },
)

export const PeerLink = Type.Object({ alias: Type.String(), vmId: Type.String(), sourceMode: Type.Union([Type.Literal('hidden'), Type.Literal('mounted')]) })

export const PeerAliasParams = Type.Object({ id: Type.String({ maxLength: 128 }), alias: Type.String({ maxLength: 64 }) })
export type PeerAliasParams = Static<typeof PeerAliasParams>

export const PeerPatchBody = Type.Object({ sourceMode: SourceMode }, { additionalProperties: false })
export type PeerPatchBody = Static<typeof PeerPatchBody>

export const PeerLinksResponse = Type.Object({ peerLinks: Type.Array(PeerLink) })
