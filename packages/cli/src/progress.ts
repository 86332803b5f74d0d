// Progress of a long transfer on stderr: a rewritten line on a terminal (at most 5 a second), and
// nothing when stderr is a file or a pipe, so scripts' logs stay clean.
export function transferProgress(label: string, total?: number): (bytes: number, done?: boolean) => void {
  let sent = 0
  let last = 0
  return (bytes, done = false) => {
    sent += bytes
    if (!process.stderr.isTTY || (!done && Date.now() - last < 200)) return
    last = Date.now()
    const mb = (sent / 1048576).toFixed(1)
    process.stderr.write(`\r${label} ${mb} MiB${total ? ` of ${(total / 1048576).toFixed(1)} MiB (${Math.round((sent / total) * 100)} %)` : ''}   ${done ? '\n' : ''}`)
  }
}
