import { log } from '../log.ts'

/** PID 1 owns the clean power-off (sync, unmount, reboot(2)); the agent only asks for it. */
export function requestShutdown(): void {
  log.info('shutdown requested by host')
  try {
    process.kill(1, 'SIGTERM')
  } catch (e) {
    log.error(`cannot signal PID 1: ${(e as Error).message}`)
  }
}
