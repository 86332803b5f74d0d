import { Terminal as XTerm } from '@xterm/xterm'
import { useEffect, useRef, useState } from 'preact/hooks'
import { api, type Vm } from '../api.ts'
import { ago, ErrorBox, StateBadge } from '../ui/parts.tsx'
import { useAction, useData } from '../ui/use-data.ts'
import { VmActions } from './vms.tsx'

interface ExecResult {
  exitCode: number
  stdout: string
  stderr: string
  timedOut?: boolean
  result?: unknown
  error?: unknown
}

/**
 * A real terminal: `bash -l` on a pseudo-terminal in the VM (a background process), attached over
 * a WebSocket with a single-use ticket. Leaving the tab ends the shell.
 */
function PtyTerminal({ vm }: { vm: Vm }) {
  const host = useRef<HTMLDivElement>(null)
  const [status, setStatus] = useState('starting…')
  useEffect(() => {
    if (vm.state !== 'RUNNING') return setStatus(`the VM is ${vm.state}`)
    const term = new XTerm({ cols: 110, rows: 30, fontFamily: 'ui-monospace, monospace', fontSize: 13, cursorBlink: true })
    term.open(host.current!)
    let ws: WebSocket | undefined
    let pid: number | undefined
    let gone = false
    const base = `/v1/vms/${encodeURIComponent(vm.id)}/processes`
    void (async () => {
      const p = await api.post<{ pid: number }>(base, { args: ['bash', '-l'], pty: { cols: term.cols, rows: term.rows }, tag: 'console-terminal' })
      pid = p.pid
      if (gone) return void api.del(`${base}/${pid}`).catch(() => {})
      const { ticket } = await api.post<{ ticket: string }>(`${base}/${pid}/attach-ticket`)
      ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${base}/${pid}/attach?ticket=${encodeURIComponent(ticket)}`)
      ws.binaryType = 'arraybuffer'
      ws.onopen = () => {
        setStatus('connected')
        term.focus()
      }
      ws.onmessage = (m) => {
        if (typeof m.data !== 'string') return term.write(new Uint8Array(m.data as ArrayBuffer))
        const control = JSON.parse(m.data) as { type: string; exitCode?: number }
        if (control.type === 'exit') {
          term.write(`\r\n[exited ${control.exitCode}]\r\n`)
          setStatus('exited')
        }
      }
      ws.onclose = () => setStatus((s) => (s === 'exited' ? s : 'disconnected'))
      const encoder = new TextEncoder()
      term.onData((d) => ws?.readyState === WebSocket.OPEN && ws.send(encoder.encode(d)))
      term.onResize(({ cols, rows }) => ws?.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ type: 'resize', cols, rows })))
    })().catch((e: Error) => setStatus(`error: ${e.message}`))
    return () => {
      gone = true
      ws?.close()
      term.dispose()
      if (pid !== undefined) void api.del(`${base}/${pid}`).catch(() => {})
    }
  }, [vm.id, vm.state])
  return (
    <div>
      <div class="muted" role="status" aria-label="Terminal status">
        {status}
      </div>
      <div class="xterm-host" ref={host} aria-label="Terminal" />
    </div>
  )
}

/** A command line: each command runs as uid 1000 in /workspace; its output is shown below it. */
function CommandConsole({ vm }: { vm: Vm }) {
  const [history, setHistory] = useState<{ cmd: string; r?: ExecResult; error?: string }[]>([])
  const [cmd, setCmd] = useState('')
  const [busy, setBusy] = useState(false)
  const input = useRef<HTMLInputElement>(null)
  const run = async (e: Event) => {
    e.preventDefault()
    if (!cmd.trim()) return
    const line = cmd
    setCmd('')
    setBusy(true)
    try {
      const r = await api.post<ExecResult>(`/v1/vms/${vm.id}/exec`, { cmd: line })
      setHistory((h) => [...h, { cmd: line, r }])
    } catch (err) {
      setHistory((h) => [...h, { cmd: line, error: (err as Error).message }])
    } finally {
      setBusy(false)
      input.current?.focus()
    }
  }
  return (
    <div class="terminal" aria-label="Commands">
      {history.map((h, i) => (
        <div key={i} class="term-entry">
          <div class="prompt">$ {h.cmd}</div>
          {h.r && <pre class="out">{h.r.stdout}</pre>}
          {h.r?.stderr && <pre class="err">{h.r.stderr}</pre>}
          {h.r && h.r.exitCode !== 0 && <div class="muted">exit {h.r.exitCode}</div>}
          {h.error && <div class="error">{h.error}</div>}
        </div>
      ))}
      <form onSubmit={run} class="term-input">
        <span>$</span>
        <input ref={input} name="cmd" aria-label="Command" autocomplete="off" value={cmd} disabled={busy || vm.state !== 'RUNNING'} onInput={(e) => setCmd(e.currentTarget.value)} placeholder={vm.state === 'RUNNING' ? 'a shell command, e.g. ls -la' : `the VM is ${vm.state}`} />
      </form>
    </div>
  )
}

function CodeRunner({ vm }: { vm: Vm }) {
  const [lang, setLang] = useState<'run-ts' | 'run-js'>('run-ts')
  const [code, setCode] = useState('result.set({ hello: "world", at: new Date().toISOString() })')
  const [out, setOut] = useState<ExecResult | undefined>(undefined)
  const action = useAction()
  const run = () => action.run(async () => setOut(await api.post<ExecResult>(`/v1/vms/${vm.id}/${lang}`, { code })))
  return (
    <div>
      <div class="toolbar">
        <select aria-label="Language" value={lang} onChange={(e) => setLang(e.currentTarget.value as 'run-ts')}>
          <option value="run-ts">TypeScript (Deno)</option>
          <option value="run-js">JavaScript (Node)</option>
        </select>
        <button onClick={run} disabled={action.busy || vm.state !== 'RUNNING'}>
          {action.busy ? 'Running…' : 'Run'}
        </button>
      </div>
      <textarea class="code" aria-label="Code" rows={10} spellcheck={false} value={code} onInput={(e) => setCode(e.currentTarget.value)} />
      <ErrorBox error={action.error} />
      {out && (
        <div class="result">
          <div>exit {out.exitCode}</div>
          {out.result !== undefined && <pre aria-label="Result">{JSON.stringify(out.result, null, 2)}</pre>}
          {out.error !== undefined && <pre class="err">{JSON.stringify(out.error, null, 2)}</pre>}
          {out.stdout && <pre class="out">{out.stdout}</pre>}
          {out.stderr && <pre class="err">{out.stderr}</pre>}
        </div>
      )}
    </div>
  )
}

function Files({ vm }: { vm: Vm }) {
  const [dest, setDest] = useState('/workspace')
  const [path, setPath] = useState('/workspace')
  const [done, setDone] = useState('')
  const action = useAction()
  const upload = (e: Event) => {
    e.preventDefault()
    const file = (e.currentTarget as HTMLFormElement).querySelector<HTMLInputElement>('input[type=file]')!.files?.[0]
    if (!file) return
    void action.run(async () => {
      await api.upload('POST', `/v1/vms/${vm.id}/files/upload?dest=${encodeURIComponent(dest)}`, file)
      setDone(`${file.name} unpacked into ${dest}`)
    })
  }
  const listing = useData(() => (vm.state === 'RUNNING' ? api.post<ExecResult>(`/v1/vms/${vm.id}/exec`, { cmd: 'ls -la /workspace' }) : Promise.resolve(undefined)), [vm.id, vm.state, done])
  return (
    <div class="files">
      <form onSubmit={upload} class="panel" aria-label="Upload">
        <h4>Upload a .tar.gz</h4>
        <input type="file" name="archive" accept=".tar.gz,.tgz,application/gzip" />
        <label>
          into <input name="dest" value={dest} onInput={(e) => setDest(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={action.busy || vm.state !== 'RUNNING'}>
          Upload
        </button>
        {done && <div class="ok">{done}</div>}
      </form>
      <div class="panel">
        <h4>Download as .tar.gz</h4>
        <input aria-label="Download path" value={path} onInput={(e) => setPath(e.currentTarget.value)} />
        <a class="button" href={`/v1/vms/${vm.id}/files/download?path=${encodeURIComponent(path)}`} download>
          Download
        </a>
      </div>
      <ErrorBox error={action.error} />
      <h4>/workspace</h4>
      <pre aria-label="Workspace listing">{listing.value?.stdout ?? ''}</pre>
    </div>
  )
}

function Logs({ vm }: { vm: Vm }) {
  const consoleLog = useData(() => api.get<{ lines: string[] }>(`/v1/vms/${vm.id}/logs?type=console.log&tail=200`), [vm.id])
  const history = useData(() => api.get<{ entries: { id: string; timestamp: string; type: string; input: Record<string, unknown>; result: { exitCode: number } }[] }>(`/v1/vms/${vm.id}/exec-logs?limit=50`), [vm.id], (e) => e.entityId === vm.id)
  return (
    <div>
      <h4>Executions</h4>
      <table>
        <tbody>
          {(history.value?.entries ?? []).map((e) => (
            <tr key={e.id}>
              <td>{ago(e.timestamp)}</td>
              <td>{e.type}</td>
              <td>
                <code>{String(e.input.cmd ?? e.input.path ?? (e.input.code ? 'inline code' : ''))}</code>
              </td>
              <td>exit {e.result.exitCode}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h4>
        Console <button onClick={consoleLog.reload}>Refresh</button>
      </h4>
      <pre class="log">{(consoleLog.value?.lines ?? []).join('\n')}</pre>
    </div>
  )
}

function Network({ vm, onDone }: { vm: Vm; onDone: () => void }) {
  const [allowIps, setAllowIps] = useState(vm.allowIps.join(', '))
  const [allowDomains, setAllowDomains] = useState(vm.allowDomains.join(', '))
  const [outbound, setOutbound] = useState(vm.outboundInternet)
  const action = useAction()
  const split = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean)
  const save = (e: Event) => {
    e.preventDefault()
    void action.run(() => api.patch(`/v1/vms/${vm.id}/network`, { allowIps: split(allowIps), allowDomains: split(allowDomains), outboundInternet: outbound })).then((ok) => ok && onDone())
  }
  return (
    <form onSubmit={save} class="panel" aria-label="Network policy">
      <label>
        Allowed IPs <input value={allowIps} onInput={(e) => setAllowIps(e.currentTarget.value)} />
      </label>
      <label>
        Allowed domains <input value={allowDomains} onInput={(e) => setAllowDomains(e.currentTarget.value)} />
      </label>
      <label class="check">
        <input type="checkbox" checked={outbound} onChange={(e) => setOutbound(e.currentTarget.checked)} /> Outbound internet
      </label>
      <ErrorBox error={action.error} />
      <button type="submit" disabled={action.busy}>
        Apply
      </button>
    </form>
  )
}

const TABS = ['terminal', 'commands', 'code', 'files', 'logs', 'network', 'peers'] as const

export function VmDetail({ id }: { id: string }) {
  const vm = useData(() => api.get<Vm>(`/v1/vms/${id}`), [id], (e) => e.entityId === id)
  const [tab, setTab] = useState<(typeof TABS)[number]>('terminal')
  const v = vm.value
  return (
    <>
      <h2>
        VM <code>{id}</code> {v && <StateBadge state={v.state} />}
      </h2>
      <ErrorBox error={vm.error} />
      {v && (
        <>
          <p class="muted">
            {v.cpu} vCPU · {v.memMb} MiB · {v.guestIp ?? 'no address'} · image {v.imageId} · {v.provisionMode ?? ''} · created {ago(v.createdAt)} by {v.createdBy ?? 'unknown'}
            {v.lastError && <span class="error"> {v.lastError}</span>}
          </p>
          <VmActions vm={v} onDone={vm.reload} />
          <nav class="tabs" role="tablist">
            {TABS.map((t) => (
              <button role="tab" aria-selected={t === tab} class={t === tab ? 'active' : ''} onClick={() => setTab(t)} key={t}>
                {t}
              </button>
            ))}
          </nav>
          {tab === 'terminal' && <PtyTerminal vm={v} />}
          {tab === 'commands' && <CommandConsole vm={v} />}
          {tab === 'code' && <CodeRunner vm={v} />}
          {tab === 'files' && <Files vm={v} />}
          {tab === 'logs' && <Logs vm={v} />}
          {tab === 'network' && <Network vm={v} onDone={vm.reload} />}
          {tab === 'peers' && (
            <ul>
              {v.peerLinks.length === 0 && <li class="muted">No peer links.</li>}
              {v.peerLinks.map((l) => (
                <li key={l.alias}>
                  <code>{l.alias}</code> → {l.vmId} ({l.sourceMode})
                </li>
              ))}
            </ul>
          )}
        </>
      )}
    </>
  )
}
