// Guest agent entry point: run as root by PID 1, restarted by it if it dies.
import fs from 'node:fs'
import { CONTROL_PORT_NAME } from '@rds/protocol'
import { AGENT_VERSION, loadConfig } from './config.ts'
import { createContext } from './context.ts'
import { log } from './log.ts'
import { startBridgeRelay } from './peers/bridge-relay.ts'
import { createAgentServer } from './server.ts'
import { serveConnection } from './transport/serve.ts'
import { servePortWithReader } from './transport/port-reader.ts'
import { listenUnix } from './transport/unix-listener.ts'
import { servePort } from './transport/virtio-port.ts'

/** The port's receive side is read by this C program when the image has it (port-reader.ts). */
const PORT_READER_BIN = '/usr/lib/rds/rds-portpipe'

async function main(): Promise<void> {
  const config = loadConfig()
  const ctx = await createContext(config)
  const server = createAgentServer(ctx)
  const onSocket = serveConnection.bind(null, server)
  if (config.listenUnix) {
    await listenUnix(config.listenUnix, onSocket)
    log.info(`agent ${AGENT_VERSION} listening on unix:${config.listenUnix} (test mode)`)
  } else {
    // A memory bomb in user code must not take the control channel with it: the OOM killer
    // never picks the agent. rds-exec resets the score to 0 for everything the user runs.
    try {
      fs.writeFileSync('/proc/self/oom_score_adj', '-1000')
    } catch (e) {
      log.error(`cannot protect the agent from the OOM killer: ${(e as Error).message}`)
    }
    if (fs.existsSync(PORT_READER_BIN)) servePortWithReader(CONTROL_PORT_NAME, PORT_READER_BIN, onSocket)
    else servePort(CONTROL_PORT_NAME, onSocket)
    startBridgeRelay(config.peerBridgeSocket)
    log.info(`agent ${AGENT_VERSION} serving virtio port ${CONTROL_PORT_NAME}, peer bridge on ${config.peerBridgeSocket}`)
  }
  // One failed request must not take the agent (and with it the VM's control channel) down.
  process.on('uncaughtException', (e) => log.error(`uncaught: ${e.stack ?? e}`))
  process.on('unhandledRejection', (e) => log.error(`unhandled rejection: ${(e as Error)?.stack ?? e}`))
  process.on('SIGTERM', () => process.exit(0))
}

main().catch((e: unknown) => {
  log.error(`agent failed to start: ${(e as Error)?.stack ?? e}`)
  process.exit(1)
})
