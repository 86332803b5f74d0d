// Guest agent entry point: run as root by PID 1, restarted by it if it dies.
import { CONTROL_PORT_NAME } from '@rds/protocol'
import { AGENT_VERSION, loadConfig } from './config.ts'
import { createContext } from './context.ts'
import { log } from './log.ts'
import { createAgentServer } from './server.ts'
import { serveConnection } from './transport/serve.ts'
import { listenUnix } from './transport/unix-listener.ts'
import { servePort } from './transport/virtio-port.ts'

async function main(): Promise<void> {
  const config = loadConfig()
  const ctx = await createContext(config)
  const server = createAgentServer(ctx)
  const onSocket = serveConnection.bind(null, server)
  if (config.listenUnix) {
    await listenUnix(config.listenUnix, onSocket)
    log.info(`agent ${AGENT_VERSION} listening on unix:${config.listenUnix} (test mode)`)
  } else {
    servePort(CONTROL_PORT_NAME, onSocket)
    log.info(`agent ${AGENT_VERSION} serving virtio port ${CONTROL_PORT_NAME}`)
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
