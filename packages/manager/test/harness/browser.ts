// A real headless Chromium (Debian's `chromium`) driven by playwright-core, for the console tests.
import fs from 'node:fs'
import { chromium, type Browser } from 'playwright-core'

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser']

export async function launchBrowser(): Promise<Browser> {
  const executablePath = CANDIDATES.find((p) => fs.existsSync(p))
  if (!executablePath) throw new Error('Chromium is not installed (apt-get install chromium; `npm test` installs it)')
  // As root, Chromium runs only without its own sandbox; the pages it loads are our console.
  return chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-dev-shm-usage'] })
}

/** Where the console screenshots in docs/ come from: written only when RDS_SCREENSHOTS is set. */
export const screenshotDir = process.env.RDS_SCREENSHOTS ? new URL('../../../../docs/screenshots/', import.meta.url).pathname : undefined
