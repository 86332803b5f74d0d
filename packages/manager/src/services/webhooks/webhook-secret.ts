// Webhook signing secrets: generated, shown once, stored sealed (AES-256-GCM under a key derived
// from the manager key, the webhook id as additional data), and used to sign each delivery.
import crypto from 'node:crypto'

const VERSION = 'v1'

export function createSecretSealer(managerKey: Buffer) {
  const key = Buffer.from(crypto.hkdfSync('sha256', managerKey, 'run-dat-sheesh', `webhook secret ${VERSION}`, 32))
  return {
    seal(webhookId: string, secret: string): string {
      const iv = crypto.randomBytes(12)
      const c = crypto.createCipheriv('aes-256-gcm', key, iv).setAAD(Buffer.from(webhookId))
      const data = Buffer.concat([c.update(secret, 'utf8'), c.final()])
      return [VERSION, iv.toString('base64'), c.getAuthTag().toString('base64'), data.toString('base64')].join(':')
    },
    open(webhookId: string, sealed: string): string {
      const [version, iv, tag, data] = sealed.split(':')
      if (version !== VERSION || !iv || !tag || data === undefined) throw new Error('unreadable webhook secret')
      const d = crypto.createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64')).setAAD(Buffer.from(webhookId))
      d.setAuthTag(Buffer.from(tag, 'base64'))
      return Buffer.concat([d.update(Buffer.from(data, 'base64')), d.final()]).toString('utf8')
    },
  }
}
export type SecretSealer = ReturnType<typeof createSecretSealer>

export const newWebhookSecret = () => `whsec_${crypto.randomBytes(32).toString('base64url')}`

/**
 * The signature header of a delivery: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
 * A receiver recomputes it with its copy of the secret and refuses old timestamps (replays).
 */
export function signature(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${crypto.createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`
}
