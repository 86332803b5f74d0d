// Resync handshake on the virtio-serial channel (see docs/architecture.md, "Agent channel").
// QEMU queues bytes the guest wrote while no host was connected and hands them to the next
// client, and the guest may miss a fast disconnect. So on every connect the host sends
// `\0SYNC:<token>\n` repeatedly until it reads `\0ACK:<token>\n` for its latest token; it
// drops everything before that ACK. The guest answers every SYNC it sees with an ACK and
// then drops bytes until the HTTP/2 client preface, which starts the session.
export const SYNC_PREFIX = '\0SYNC:'
export const ACK_PREFIX = '\0ACK:'
export const HTTP2_PREFACE = 'PRI * HTTP/2.0\r\n'
export const SYNC_INTERVAL_MS = 25

export const syncLine = (token: string): string => `${SYNC_PREFIX}${token}\n`
export const ackLine = (token: string): string => `${ACK_PREFIX}${token}\n`
