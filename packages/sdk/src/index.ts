// @run-dat-sheesh/sdk: real microVM sandboxes for untrusted code.
export { Sandbox, SandboxFiles, SandboxNetwork, SandboxPeers, SandboxPorts, SandboxProcesses, SandboxPty } from './sandbox.ts'
export { ProcessConnection, type AttachOptions, type ProcessExit, type WebSocketConstructor } from './attach.ts'
export { Images, type ImagePart, type UploadBody } from './images.ts'
export { Template } from './template.ts'
export { RdsApiError, RdsConnectionError } from './errors.ts'
export type { ClientOptions, RequestOptions } from './http.ts'
export type * from './types.ts'
