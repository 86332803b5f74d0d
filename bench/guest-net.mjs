// Runs inside a VM for bench/network.ts (copied in through exec). Prints one JSON line.
//   connect <host> <port> <n>   TCP connect times in ms (the first includes ARP and conntrack setup)
//   down <url> <bytes>          HTTP download throughput, bytes/s
//   up <url> <bytes>            HTTP upload throughput, bytes/s
//   loop <bytes>                the same download and upload against a server on the VM's own
//                               loopback: the baseline without TAP, nftables and the host
import http from 'node:http'
import net from 'node:net'
import { Readable } from 'node:stream'

const [mode, ...a] = process.argv.slice(2)
const now = () => performance.now()

function connectOnce(host, port) {
  return new Promise((resolve) => {
    const t = now()
    const s = net.connect({ host, port })
    s.on('connect', () => {
      resolve(now() - t)
      s.destroy()
    })
    s.on('error', (e) => resolve(`error ${e.code}`))
  })
}

async function down(url) {
  const t = now()
  const r = await fetch(url)
  let n = 0
  for await (const c of r.body) n += c.length
  return (n / (now() - t)) * 1000
}

function* chunks(bytes) {
  const chunk = Buffer.alloc(64 * 1024, 120)
  for (let left = bytes; left > 0; left -= chunk.length) yield chunk.subarray(0, Math.min(left, chunk.length))
}

async function up(url, bytes) {
  const t = now()
  const r = await fetch(url, { method: 'POST', body: Readable.toWeb(Readable.from(chunks(bytes))), duplex: 'half' })
  await r.text()
  return (bytes / (now() - t)) * 1000
}

if (mode === 'connect') {
  const out = []
  for (let i = 0; i < Number(a[2]); i++) out.push(await connectOnce(a[0], Number(a[1])))
  console.log(JSON.stringify(out))
} else if (mode === 'down') {
  console.log(JSON.stringify(await down(a[0])))
} else if (mode === 'up') {
  console.log(JSON.stringify(await up(a[0], Number(a[1]))))
} else if (mode === 'loop') {
  const bytes = Number(a[0])
  const srv = http.createServer((req, res) => {
    if (req.method === 'POST') {
      req.resume()
      req.on('end', () => res.end('{}'))
      return
    }
    res.writeHead(200, { 'content-length': bytes })
    Readable.from(chunks(bytes)).pipe(res)
  })
  await new Promise((r) => srv.listen(0, '127.0.0.1', r))
  const base = `http://127.0.0.1:${srv.address().port}`
  const d = await down(`${base}/`)
  const u = await up(`${base}/sink`, bytes)
  srv.close()
  console.log(JSON.stringify({ down: d, up: u }))
}
