// The wrapper is the main module of every run. It defines `result`, imports the user's module,
// and at process exit sends `{result?, error?}` over fd 3, a pipe the agent created. Flushing at
// exit (not after import) keeps values set from timers or after `await`s, and also covers the
// user calling process.exit()/Deno.exit().
import { SERIALIZE_SOURCE } from './serialize.ts'

export type Runtime = 'deno' | 'node'

const COMMON = String.raw`
let __rdsHasResult = false, __rdsResult, __rdsHasError = false, __rdsError, __rdsFlushed = false;
const __rdsMessage = () => {
  const m = {};
  if (__rdsHasResult) m.result = __rdsResult;
  if (__rdsHasError) m.error = __rdsError;
  let s;
  try { s = __rdsStringify(m) } catch (e) { s = __rdsStringify({ error: __rdsSerializeError(e) }) }
  return new TextEncoder().encode(s ?? '{}');
};
`

/** How the wrapper learns its program: named when written (cold), or read from a go pipe (warm). */
interface Program {
  /** Statements run right before the import (inside its try). */
  prelude: string
  /** Expression naming the module to import. */
  target: string
}

function body(exitCodeTarget: string, write: string, onExit: string, program: Program): string {
  return `${SERIALIZE_SOURCE}
${COMMON}
const __rdsFlush = () => {
  if (__rdsFlushed) return;
  __rdsFlushed = true;
  const bytes = __rdsMessage();
  try { ${write} } catch (e) { console.error('rds: cannot deliver result: ' + e) }
};
const __rdsFail = () => { if (!${exitCodeTarget}) ${exitCodeTarget} = 1 };
const __rdsUncaught = (e) => { __rdsError = __rdsSerializeError(e); __rdsHasError = true };
Object.defineProperty(globalThis, 'result', {
  value: Object.freeze({
    set(v) { __rdsResult = v; __rdsHasResult = true },
    error(e) { __rdsError = __rdsSerializeError(e); __rdsHasError = true; __rdsFail() },
  }),
  writable: false, configurable: false, enumerable: false,
});
${onExit}
try {
  ${program.prelude}
  await import(${program.target});
} catch (e) {
  __rdsError = __rdsSerializeError(e); __rdsHasError = true; __rdsFail();
}
`
}

/** `target` is a file: URL (the user's module or the snippet written next to the wrapper). */
export function wrapperSource(runtime: Runtime, target: string): string {
  return source(runtime, { prelude: '', target: JSON.stringify(target) })
}

/**
 * A warm runtime's wrapper: everything up to the user's import runs ahead; then it blocks on the
 * go pipe (a FIFO in its run dir) for one line of JSON `{target, env}`, applies the call's env in
 * this process (so child processes inherit it, as with a cold start's execve) and imports the
 * target. The pipe is closed before user code runs, so the call sees the fds a cold run sees.
 */
export function warmWrapperSource(runtime: Runtime, goPipe: string): string {
  const read =
    runtime === 'node'
      ? `const fd = __rdsOpenSync(${JSON.stringify(goPipe)}, 'r'); const r = (b) => __rdsReadSync(fd, b, 0, b.length, null); const close = () => __rdsCloseSync(fd);`
      : `const f = Deno.openSync(${JSON.stringify(goPipe)}, { read: true }); const r = (b) => f.readSync(b) ?? 0; const close = () => f.close();`
  const setEnv = runtime === 'node' ? 'process.env[k] = v' : 'Deno.env.set(k, v)'
  const prelude = `const __rdsGo = (() => {
    ${read}
    try {
      const parts = []; const b = new Uint8Array(65536);
      for (;;) { const n = r(b); if (n === 0) break; parts.push(b.slice(0, n)); if (b[n - 1] === 10) break }
      const all = new Uint8Array(parts.reduce((a, p) => a + p.length, 0)); let o = 0;
      for (const p of parts) { all.set(p, o); o += p.length }
      return JSON.parse(new TextDecoder().decode(all));
    } finally { close() }
  })();
  for (const [k, v] of __rdsGo.env) ${setEnv};`
  return source(runtime, { prelude, target: '__rdsGo.target' })
}

function source(runtime: Runtime, program: Program): string {
  if (runtime === 'node') {
    const imports = program.prelude ? 'writeSync as __rdsWriteSync, openSync as __rdsOpenSync, readSync as __rdsReadSync, closeSync as __rdsCloseSync' : 'writeSync as __rdsWriteSync'
    return `import { ${imports} } from 'node:fs';
${body(
  'process.exitCode',
  'let off = 0; while (off < bytes.length) off += __rdsWriteSync(3, bytes, off);',
  // The monitor records async crashes without changing Node's own crash behaviour.
  "process.on('uncaughtExceptionMonitor', __rdsUncaught); process.on('exit', __rdsFlush);",
  program,
)}`
  }
  // Deno has no fd-level write for inherited descriptors; reopening /proc/self/fd/3 works for a
  // pipe (FIFO) that the user may open, and needs only --allow-write=/proc/self/fd/3. (/dev/fd is
  // a udev-made symlink the guest does not have.)
  return body(
    'Deno.exitCode',
    "const f = Deno.openSync('/proc/self/fd/3', { write: true }); try { let off = 0; while (off < bytes.length) off += f.writeSync(bytes.subarray(off)) } finally { f.close() }",
    // Deno skips 'unload' when it dies of an uncaught error, so those listeners flush themselves.
    "globalThis.addEventListener('unload', __rdsFlush);" +
      " globalThis.addEventListener('error', (ev) => { __rdsUncaught(ev.error); __rdsFlush() });" +
      " globalThis.addEventListener('unhandledrejection', (ev) => { __rdsUncaught(ev.reason); __rdsFlush() });",
    program,
  )
}
