// A guest workload for "did the save keep every write?": a Node program rewrites one number in
// each page of 32 MiB, round robin, the counter itself going up by one per write — so at any
// instant page p holds the last counter value ≡ p (mod pages), and a page the save missed holds
// an older one. It writes without a break (QEMU 7.2's TCG bug loses the writes a process makes
// between a dirty-bitmap sync and its next context switch, which flushes the TLB: a writer that
// sleeps hides it) for 20 s of guest time, enough for the save, then only waits — a restored
// guest's agent, translated afresh by TCG, must get CPU for its reconnect. On /dev/shm/pages.stop
// it checks every page against its counter and writes the verdict to /dev/shm/pages.verdict.
// /dev/shm/pages.count (rewritten every round) appears once it is writing.
export const PAGE_WRITER = `
const fs = require('fs')
const PAGES = 8192
const buf = new Float64Array(PAGES * 512)
const wait = new Int32Array(new SharedArrayBuffer(4))
const until = Date.now() + 20_000
let c = 0
while (!fs.existsSync('/dev/shm/pages.stop')) {
  if (Date.now() < until) {
    for (let k = 0; k < 100000; k++) { buf[(c % PAGES) * 512] = c; c++ }
    // Each round also has the guest kernel write (a tmpfs page, an inode): its pages are lost alike.
    fs.writeFileSync('/dev/shm/pages.count', String(c))
  } else Atomics.wait(wait, 0, 0, 100)
}
let stale = 0, first = -1
for (let p = 0; p < PAGES; p++) {
  const expected = c - 1 - ((((c - 1 - p) % PAGES) + PAGES) % PAGES)
  if (buf[p * 512] !== expected) { stale++; if (first < 0) first = p }
}
fs.writeFileSync('/dev/shm/pages.verdict', JSON.stringify({ writes: c, pages: PAGES, stale, first }))
`

/** Starts the writer in the guest (as the sandbox user, detached) and waits until it writes. */
export const startPageWriter = (file = '/workspace/pages.js') =>
  `cat > ${file} <<'EOF'\n${PAGE_WRITER}\nEOF\n(setsid node ${file} </dev/null >/dev/null 2>&1 &); for i in $(seq 600); do [ -s /dev/shm/pages.count ] && exit 0; sleep 0.1; done; exit 1`

/** Stops the writer and prints its verdict (JSON: writes, pages, stale, first). */
export const PAGE_VERDICT = 'touch /dev/shm/pages.stop; for i in $(seq 600); do [ -s /dev/shm/pages.verdict ] && break; sleep 0.1; done; cat /dev/shm/pages.verdict'
