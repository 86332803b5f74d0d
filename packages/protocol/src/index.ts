export * from './agent.ts'
export * from './handshake.ts'
