// A web server for inside a VM (Deno, which every guest image has): a page, the request headers
// it got (so a test sees what the proxy forwarded), N MiB of bytes (for the throughput bench), a
// body counter for uploads and a WebSocket echo. Started as a background process:
// `deno run --allow-net /workspace/preview-server.js <port>`.
export const PREVIEW_GUEST_SERVER = `
const port = Number(Deno.args[0])
Deno.serve({ port, hostname: '0.0.0.0', onListen: () => console.log('listening on ' + port) }, async (req) => {
  const url = new URL(req.url)
  if (req.headers.get('upgrade') === 'websocket') {
    const { socket, response } = Deno.upgradeWebSocket(req)
    socket.onmessage = (e) => socket.send('echo ' + port + ' ' + e.data)
    return response
  }
  if (url.pathname === '/headers') return Response.json(Object.fromEntries(req.headers))
  if (url.pathname === '/upload') {
    let n = 0
    for await (const c of req.body) n += c.length
    return new Response(String(n))
  }
  if (url.pathname === '/bytes') {
    const chunk = new Uint8Array(256 * 1024).fill(120)
    let left = Number(url.searchParams.get('mb') ?? '1') * 4
    const body = new ReadableStream({ pull(c) { if (left-- > 0) c.enqueue(chunk); else c.close() } })
    return new Response(body, { headers: { 'content-type': 'application/octet-stream' } })
  }
  const headers = new Headers({ 'content-type': 'text/html' })
  headers.append('set-cookie', 'app=1; Path=/')
  headers.append('set-cookie', 'wide=1; Domain=localhost; Path=/')
  return new Response('<h1>hello from port ' + port + '</h1>', { headers })
})
`
