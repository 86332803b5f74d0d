// E2B's code interpreter (`@e2b/code-interpreter`: runCode and the code contexts), port 49999 of
// a sandbox, answered by the manager like envd's port: e2bRewriteUrl() sends requests naming
// that port here, under INTERPRETER_PREFIX. The contract is the SDK's: `POST /execute` answers
// NDJSON lines (stdout, stderr, result, error, number_of_executions, end_of_execution) as they
// come; `/contexts` makes, lists, restarts and removes contexts. The work is
// services/e2b/interpreter/code-contexts.ts; this file speaks HTTP.
import { once } from 'node:events'
import type { ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import { Type, type Static } from 'typebox'
import { ApiError } from '../../errors.ts'
import { contextView, type CodeContexts } from '../../services/e2b/interpreter/code-contexts.ts'
import type { Authenticators } from '../auth.ts'
import { installE2bErrorHandler } from './e2b-errors.ts'
import { INTERPRETER_PREFIX } from './envd-routes.ts'
import { authorizeSandbox, sandboxIdOfRequest } from './sandbox-auth.ts'
import { envForEnvVars } from './sandbox-mapping.ts'

/** A cell's source; the SDK sends it whole in one JSON body. */
const MAX_CODE_BYTES = 4 * 1024 * 1024
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Optional(Type.Union([t, Type.Null()]))
const ExecuteBody = Type.Object({
  code: Type.String(),
  context_id: Nullable(Type.String({ minLength: 1, maxLength: 64 })),
  language: Nullable(Type.String({ maxLength: 64 })),
  env_vars: Nullable(Type.Record(Type.String(), Type.Unknown())),
})
const NewContext = Type.Object({
  language: Nullable(Type.String({ maxLength: 64 })),
  cwd: Nullable(Type.String({ maxLength: 4096 })),
})
const ContextParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })
const hide = true

async function writeLine(res: ServerResponse, line: object): Promise<void> {
  if (res.destroyed) return
  if (!res.write(`${JSON.stringify(line)}\n`)) await Promise.race([once(res, 'drain'), once(res, 'close')])
}

export function e2bInterpreterRoutes(deps: { contexts: CodeContexts; auth: Authenticators }) {
  const { contexts } = deps

  return async (app: FastifyInstance) => {
    installE2bErrorHandler(app)
    // The SDK sends Content-Type: application/json on restart and remove too, with no body.
    app.removeContentTypeParser('application/json')
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
      if (body === '') return done(null, undefined)
      try {
        done(null, JSON.parse(body as string))
      } catch {
        done(Object.assign(new Error('the body is not JSON'), { statusCode: 400 }), undefined)
      }
    })
    app.addHook('onRequest', async (req) => authorizeSandbox(req, deps.auth))

    await app.register(
      async (interp) => {
        interp.get('/health', { schema: { hide } }, async (_req, reply) => reply.code(200).type('text/plain').send('OK'))

        interp.post('/execute', { schema: { hide, body: ExecuteBody }, bodyLimit: MAX_CODE_BYTES }, async (req, reply) => {
          const id = sandboxIdOfRequest(req)
          const body = req.body as Static<typeof ExecuteBody>
          const env = envForEnvVars(body.env_vars ?? undefined)
          let failure: ApiError | undefined
          const context = await contexts.forExecution(id, { contextId: body.context_id, language: body.language }).catch((err: unknown) => {
            // A language we do not run is the execution's error, so the SDK shows our sentence.
            if (err instanceof ApiError && err.code === 'unsupported_language') return void (failure = err)
            throw err
          })

          const abort = new AbortController()
          const res = reply.raw
          res.on('close', () => {
            if (!res.writableFinished) abort.abort()
          })
          reply.hijack()
          res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' })
          // Now, not with the first line: the SDK starts its execution timer (timeoutMs) when the
          // headers arrive, and a silent cell may write nothing for a long time.
          res.flushHeaders()
          try {
            if (!context) {
              await writeLine(res, { type: 'error', name: 'UnsupportedLanguage', value: failure!.message, traceback: '' })
              await writeLine(res, { type: 'end_of_execution' })
            } else {
              for await (const line of contexts.execute(id, context, body.code, env, abort.signal)) {
                if (abort.signal.aborted) break
                await writeLine(res, line)
              }
            }
          } catch (err) {
            // Headers are gone: the failure becomes the execution's error.
            const message = err instanceof ApiError ? err.message : 'the execution failed in the manager'
            if (!(err instanceof ApiError)) req.log.error({ err }, 'code execution failed')
            await writeLine(res, { type: 'error', name: 'ExecutionFailed', value: message, traceback: '' })
            await writeLine(res, { type: 'end_of_execution' })
          } finally {
            res.end()
          }
        })

        interp.post('/contexts', { schema: { hide, body: NewContext } }, async (req) => {
          const body = (req.body ?? {}) as Static<typeof NewContext>
          return contextView(await contexts.create(sandboxIdOfRequest(req), body))
        })

        interp.get('/contexts', { schema: { hide } }, async (req) => (await contexts.list(sandboxIdOfRequest(req))).map(contextView))

        interp.delete('/contexts/:id', { schema: { hide, params: ContextParams } }, async (req, reply) => {
          await contexts.remove(sandboxIdOfRequest(req), (req.params as Static<typeof ContextParams>).id)
          return reply.code(204).send()
        })

        interp.post('/contexts/:id/restart', { schema: { hide, params: ContextParams } }, async (req, reply) => {
          await contexts.restart(sandboxIdOfRequest(req), (req.params as Static<typeof ContextParams>).id)
          return reply.code(204).send()
        })
      },
      { prefix: INTERPRETER_PREFIX },
    )
  }
}
