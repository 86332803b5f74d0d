// Runs inside the test's "outside world" namespace (see world.ts): an HTTP server on each given
// address that says who it is and who called, can stream bytes, and can swallow uploads; and a
// DNS server that answers A queries for names under `.test`: names whose first label is "b" get
// the second address, "private" the third (when given), all others the first.
import dgram from 'node:dgram'
import http from 'node:http'
import { Readable } from 'node:stream'

const [dnsAddress, ...httpAddresses] = process.argv.slice(2)
const PORT = 8080

for (const address of httpAddresses) {
  http
    .createServer((req, res) => {
      const url = new URL(req.url, 'http://x')
      if (url.pathname === '/bytes') {
        const n = Number(url.searchParams.get('n') ?? 0)
        res.writeHead(200, { 'content-length': n })
        const chunk = Buffer.alloc(64 * 1024, 120)
        return Readable.from((function* () {
          for (let left = n; left > 0; left -= chunk.length) yield chunk.subarray(0, Math.min(left, chunk.length))
        })()).pipe(res)
      }
      if (url.pathname === '/sink') {
        let got = 0
        req.on('data', (c) => (got += c.length))
        req.on('end', () => res.end(JSON.stringify({ got })))
        return
      }
      res.end(JSON.stringify({ server: address, client: req.socket.remoteAddress }))
    })
    .listen(PORT, address)
}

const dns = dgram.createSocket('udp4')
dns.on('message', (q, r) => {
  let at = 12
  const labels = []
  while (q[at] !== 0 && at < q.length) {
    labels.push(q.subarray(at + 1, at + 1 + q[at]).toString())
    at += q[at] + 1
  }
  const qEnd = at + 5
  const name = labels.join('.')
  const ok = name.endsWith('.test') && q.readUInt16BE(at + 1) === 1
  const head = Buffer.from(q.subarray(0, qEnd))
  head[2] = 0x84 | (q[2] & 1)
  head[3] = ok ? 0x00 : 0x03
  head.writeUInt16BE(1, 4)
  head.writeUInt16BE(ok ? 1 : 0, 6)
  head.writeUInt16BE(0, 8)
  head.writeUInt16BE(0, 10)
  const target = labels[0] === 'b' ? httpAddresses[1] : labels[0] === 'private' && httpAddresses[2] ? httpAddresses[2] : httpAddresses[0]
  const answer = ok ? Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...target.split('.').map(Number)]) : Buffer.alloc(0)
  dns.send(Buffer.concat([head, answer]), r.port, r.address)
})
dns.bind(53, dnsAddress)
process.stdout.write('ready\n')
