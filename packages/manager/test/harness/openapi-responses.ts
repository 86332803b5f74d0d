// Every API response the tests see is checked against the OpenAPI document of the manager that
// answered it (GET /openapi.json): route, method and status pick the documented response, whose
// media type must be the one answered and whose schema must accept the JSON body. Fastify
// serialises by the same schemas, so a mismatch here is what serialisation cannot catch: an enum,
// a format, null where none is allowed, a status the route's schema never names (sent as plain
// JSON), an error body described as gzip.
//
// A mismatch fails the request that got it. A route or status the document does not describe is
// not a failure but is reported (stderr, and appended to $RDS_OPENAPI_REPORT when set), so a
// whole run lists what the document is missing.
import fs from 'node:fs'
import { Ajv, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'

interface MediaType {
  schema?: object
}
interface Operation {
  responses?: Record<string, { content?: Record<string, MediaType> }>
}
export interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>
}

export type ResponseCheck =
  | { kind: 'ok'; route: string }
  | { kind: 'undocumented'; route: string; what: string }
  | { kind: 'mismatch'; route: string; problem: string }

const mediaType = (contentType: string | undefined) => contentType?.split(';')[0]!.trim().toLowerCase() ?? ''
const isJson = (type: string) => type === 'application/json' || type.endsWith('+json')

export class OpenApiResponses {
  private readonly ajv = new Ajv({ strict: false, allErrors: true })
  private readonly routes: Array<{ template: string; pattern: RegExp; params: number }>
  private readonly compiled = new Map<object, ValidateFunction>()
  private readonly doc: OpenApiDocument

  constructor(doc: OpenApiDocument) {
    this.doc = doc
    addFormats.default(this.ajv)
    this.routes = Object.keys(doc.paths).map((template) => {
      const parts = template.split(/\{[^}]+\}/)
      const pattern = new RegExp(`^${parts.map((p) => p.replace(/[.*+?^$()|[\]\\]/g, '\\$&')).join('[^/]+')}$`)
      return { template, pattern, params: parts.length - 1 }
    })
  }

  /** The documented path a request path falls under; a literal segment beats a parameter. */
  routeOf(url: string): string | undefined {
    const p = url.split(/[?#]/)[0]!
    return this.routes.filter((r) => r.pattern.test(p)).sort((a, b) => a.params - b.params)[0]?.template
  }

  /** `body` is the response text, or undefined when it was read as bytes (not JSON). */
  check(method: string, url: string, status: number, contentType: string | undefined, body: string | undefined): ResponseCheck {
    const template = this.routeOf(url)
    const route = `${method.toUpperCase()} ${template ?? url.split(/[?#]/)[0]}`
    if (!template) return { kind: 'undocumented', route, what: 'no such path in the document' }
    const op = this.doc.paths[template]![method.toLowerCase()]
    if (!op) return { kind: 'undocumented', route, what: 'no such operation in the document' }
    const responses = op.responses ?? {}
    const documented = responses[String(status)] ?? responses[`${String(status)[0]}XX`] ?? responses.default
    if (!documented) return { kind: 'undocumented', route, what: `status ${status} is not documented (documented: ${Object.keys(responses).join(', ')})` }
    const type = mediaType(contentType)
    const hasBody = body === undefined ? !!type : body.length > 0
    const content = documented.content ?? {}
    if (!hasBody) {
      return Object.keys(content).length === 0 || status === 204 ? { kind: 'ok', route } : { kind: 'mismatch', route, problem: `${status} answered with an empty body; documented as ${Object.keys(content).join(', ')}` }
    }
    const media = content[type]
    if (!media) return { kind: 'mismatch', route, problem: `${status} answered ${type || 'without a content type'}; documented as ${Object.keys(content).join(', ') || 'no body'}` }
    if (!isJson(type) || !media.schema) return { kind: 'ok', route }
    let data: unknown
    try {
      data = JSON.parse(body!)
    } catch (err) {
      return { kind: 'mismatch', route, problem: `${status} answered ${type} that is not JSON: ${(err as Error).message}` }
    }
    const validate = this.validator(media.schema)
    if (validate(data)) return { kind: 'ok', route }
    return { kind: 'mismatch', route, problem: `${status} body does not match its schema: ${this.ajv.errorsText(validate.errors, { dataVar: 'body' })}` }
  }

  private validator(schema: object): ValidateFunction {
    let v = this.compiled.get(schema)
    if (!v) {
      v = this.ajv.compile(schema)
      this.compiled.set(schema, v)
    }
    return v
  }
}

const reported = new Set<string>()

/** Throws on a mismatch (the test fails with route, status and the schema's complaint); reports gaps once. */
export function enforce(result: ResponseCheck, status: number, body: string | undefined): void {
  if (result.kind === 'mismatch') {
    throw new Error(`the response to ${result.route} does not match /openapi.json: ${result.problem}${body ? `\nbody: ${body.slice(0, 1000)}` : ''}`)
  }
  if (result.kind !== 'undocumented') return
  const line = `${result.route} ${status}: ${result.what}`
  if (reported.has(line)) return
  reported.add(line)
  process.stderr.write(`openapi: undocumented response ${line}\n`)
  if (process.env.RDS_OPENAPI_REPORT) fs.appendFileSync(process.env.RDS_OPENAPI_REPORT, `${line}\n`)
}
