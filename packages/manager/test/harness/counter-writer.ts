// A guest workload for "is this snapshot one instant?": a shell loop that appends a counter to a
// memory file (/dev/shm/mem.log) and then to a disk file (/workspace/disk.log, synced), rewrites
// 512 KiB of /dev/shm each round (a shell builtin: dirty pages without a new process) and ends
// after 400 rounds — so a guest resumed from a snapshot, its agent translated afresh by TCG, is not
// starved of its VMM's one-CPU quota for its reconnect — or when /dev/shm/stop appears (then
// /dev/shm/stopped). At any instant the disk holds the memory's count or one less. Used by
// snapshot-live.test.ts and bench/snapshots.ts.
export const COUNTER_WRITER = `
i=0
while [ ! -e /dev/shm/stop ] && [ $i -lt 400 ]; do
  i=$((i+1))
  echo $i >> /dev/shm/mem.log
  echo $i >> /workspace/disk.log
  sync /workspace/disk.log
  printf "%0524288d" $i > /dev/shm/churn
  sleep 0.05
done
touch /dev/shm/stopped
`

/** The count in a log of the numbers 1..n, one per line and nothing else; throws naming the first bad line (NUL bytes of unwritten blocks, a gap, a repeat). */
export function countedLines(text: string): number {
  const lines = text.split('\n').filter((l, i, all) => l !== '' || i < all.length - 1)
  lines.forEach((l, i) => {
    if (l !== String(i + 1)) throw new Error(`line ${i + 1} is ${JSON.stringify(l.slice(0, 40))}`)
  })
  return lines.length
}
