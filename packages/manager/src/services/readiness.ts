// GET /ready: whether this manager can serve a create now. Three checks, each bounded in time
// (a database that hangs must not hang the probe): the database answers, the default image is
// there with its files, and the host side of the VM network is up. The reasons are written for
// an unauthenticated caller: they name what is wrong, never a host path or a driver's message.
import fs from 'node:fs'
import path from 'node:path'
import type { FastifyBaseLogger } from 'fastify'
import { pingDatabase, type Db } from '../store/db.ts'
import type { ImagesRepo } from '../store/images-repo.ts'
import type { Paths } from '../runtime/storage/paths.ts'
import type { NetworkService } from './network.ts'

export type ReadinessCheck = 'database' | 'defaultImage' | 'network'
export interface CheckResult {
  ok: boolean
  /** Why not, for a person; absent when ok. */
  message?: string
}
export interface Readiness {
  ready: boolean
  checks: Record<ReadinessCheck, CheckResult>
}

/** A check that takes longer than this has failed: a probe answers in time or not at all. */
const CHECK_TIMEOUT_MS = 2000

async function bounded(check: () => Promise<string | undefined>): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`no answer within ${CHECK_TIMEOUT_MS} ms`), CHECK_TIMEOUT_MS)))
  try {
    const problem = await Promise.race([check(), late])
    return problem === undefined ? { ok: true } : { ok: false, message: problem }
  } finally {
    clearTimeout(timer)
  }
}

export function createReadiness(deps: { db: Db; images: Pick<ImagesRepo, 'getDefaultId' | 'get'>; paths: Pick<Paths, 'imageDir'>; network: Pick<NetworkService, 'problem'>; log: FastifyBaseLogger }) {
  async function database(): Promise<string | undefined> {
    try {
      await pingDatabase(deps.db)
      return undefined
    } catch (err) {
      // The driver's message may name the database host or file: the log has it, the probe does not.
      deps.log.warn({ err: (err as Error).message }, 'readiness: the database did not answer')
      return 'the database did not answer'
    }
  }

  async function defaultImage(): Promise<string | undefined> {
    const id = await deps.images.getDefaultId()
    if (!id) return 'no default image is set'
    const img = await deps.images.get(id)
    if (!img?.kernelFilename || !img.rootfsFilename) return 'the default image has no kernel or no rootfs'
    const files = [img.kernelFilename, img.rootfsFilename, img.initrdFilename].filter((f): f is string => !!f)
    if (!files.every((f) => fs.existsSync(path.join(deps.paths.imageDir(id), f)))) return 'a file of the default image is missing'
    return undefined
  }

  return {
    async check(): Promise<Readiness> {
      const [db, image, network] = await Promise.all([bounded(database), bounded(() => defaultImage().catch(() => 'the default image could not be read')), bounded(async () => deps.network.problem())])
      return { ready: db.ok && image.ok && network.ok, checks: { database: db, defaultImage: image, network } }
    },
  }
}
export type ReadinessService = ReturnType<typeof createReadiness>
