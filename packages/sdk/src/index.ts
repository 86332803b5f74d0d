// @run-dat-sheesh/sdk: real microVM sandboxes for untrusted code.
export { Sandbox, SandboxFiles, SandboxNetwork, SandboxPeers, SandboxPorts, SandboxProcesses } from './sandbox.ts'
export { RdsApiError, RdsConnectionError } from './errors.ts'
export type { ClientOptions, RequestOptions } from './http.ts'
export type * from './types.ts'
