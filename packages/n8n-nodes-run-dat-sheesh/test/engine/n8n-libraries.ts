// n8n's libraries as n8n itself loads them: CommonJS. Their ESM builds do not load under plain
// Node (extensionless imports), and a second, ESM copy of n8n-workflow next to the CommonJS one
// that n8n-core and our built node use would split its classes (instanceof NodeApiError, the
// credentials helper base class) in two.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

export const n8nWorkflow = require('n8n-workflow') as typeof import('n8n-workflow')
export const n8nCore = require('n8n-core') as typeof import('n8n-core')
