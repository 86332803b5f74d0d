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

function body(exitCodeTarget: string, write: string, onExit: string, target: string): string {
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
  await import(${JSON.stringify(target)});
} catch (e) {
  __rdsError = __rdsSerializeError(e); __rdsHasError = true; __rdsFail();
}
`
}

/** `target` is a file: URL (the user's module or the snippet written next to the wrapper). */
export function wrapperSource(runtime: Runtime, target: string): string {
  if (runtime === 'node') {
    return `import { writeSync as __rdsWriteSync } from 'node:fs';
${body(
  'process.exitCode',
  'let off = 0; while (off < bytes.length) off += __rdsWriteSync(3, bytes, off);',
  // The monitor records async crashes without changing Node's own crash behaviour.
  "process.on('uncaughtExceptionMonitor', __rdsUncaught); process.on('exit', __rdsFlush);",
  target,
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
    target,
  )
}
