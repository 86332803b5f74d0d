export * from './agent.ts'
export * from './handshake.ts'
export * from './peer-bridge.ts'
export * from './peer-manifest.ts'
