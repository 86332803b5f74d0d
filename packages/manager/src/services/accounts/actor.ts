// Who is asking: the env API_KEY, a minted API key, or a logged-in admin. Every authenticated
// request has one; what it creates records its label (createdBy).
export type Actor =
  | { kind: 'env-key' }
  | { kind: 'api-key'; keyId: string; name: string }
  | { kind: 'admin'; email: string }

/** The stable text stored as createdBy and shown in the API and the console. */
export function actorLabel(actor: Actor): string {
  switch (actor.kind) {
    case 'env-key':
      return 'env:API_KEY'
    case 'api-key':
      return `key:${actor.keyId}`
    case 'admin':
      return `admin:${actor.email}`
  }
}
