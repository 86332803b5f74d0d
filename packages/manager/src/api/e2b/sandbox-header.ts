// Which sandbox an envd request is for: the SDKs name it in E2b-Sandbox-Id (the request was
// authenticated for that sandbox by envd-routes.ts before any handler runs).
import { Code, ConnectError, type HandlerContext } from '@connectrpc/connect'

export const SANDBOX_ID_HEADER = 'e2b-sandbox-id'
export const SANDBOX_PORT_HEADER = 'e2b-sandbox-port'
/** The port E2B's envd listens on inside a sandbox. */
export const ENVD_PORT = '49983'
/** The port of E2B's code interpreter (`@e2b/code-interpreter`), served by the manager too (interpreter-routes.ts). */
export const INTERPRETER_PORT = '49999'
/** The ports the manager answers itself; any other port of a sandbox is proxied into the VM. */
export const SERVED_PORTS: readonly string[] = [ENVD_PORT, INTERPRETER_PORT]

export function sandboxIdOf(ctx: HandlerContext): string {
  const id = ctx.requestHeader.get(SANDBOX_ID_HEADER)
  if (!id) throw new ConnectError('the E2b-Sandbox-Id header is required', Code.InvalidArgument)
  return id
}
