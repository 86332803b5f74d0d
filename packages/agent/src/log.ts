// The agent's stdout/stderr go to the VM console log, which the host keeps per VM.
const line = (level: string, msg: string): string => `${new Date().toISOString()} rds-agent ${level} ${msg}\n`

export const log = {
  info: (msg: string): void => void process.stdout.write(line('info', msg)),
  warn: (msg: string): void => void process.stderr.write(line('warn', msg)),
  error: (msg: string): void => void process.stderr.write(line('error', msg)),
}
