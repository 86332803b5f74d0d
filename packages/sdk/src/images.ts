// Guest images (an operator's calls, not a sandbox user's): list them, register one and upload its
// kernel, initrd and root filesystem (streamed), make one the default, delete one.
import { RdsApiError } from './errors.ts'
import { Http, type ClientOptions, type RequestOptions } from './http.ts'
import type { ImageInfo } from './types.ts'

export type ImagePart = 'kernel' | 'initrd' | 'rootfs'
/** Bytes, or a stream of them (a stream is sent as it is read: a large rootfs is never held in memory). */
export type UploadBody = Uint8Array | Blob | ReadableStream<Uint8Array>

export class Images {
  private readonly http: Http

  constructor(o: ClientOptions = {}) {
    this.http = new Http(o)
  }

  list(o: RequestOptions = {}): Promise<ImageInfo[]> {
    return this.http.json<ImageInfo[]>('GET', '/v1/images', undefined, o)
  }

  async get(id: string, o: RequestOptions = {}): Promise<ImageInfo> {
    const found = (await this.list(o)).find((i) => i.id === id)
    if (!found) throw new RdsApiError(404, 'image_not_found', `no image ${id}`)
    return found
  }

  /** Registers an empty image; upload its parts next. */
  create(name: string, description = '', o: RequestOptions = {}): Promise<ImageInfo> {
    return this.http.json<ImageInfo>('POST', '/v1/images', { name, description }, o)
  }

  /** One part of an image; the manager checks it and rebuilds the image's seed snapshot. */
  async upload(id: string, part: ImagePart, data: UploadBody, o: RequestOptions = {}): Promise<void> {
    const res = await this.http.send('PUT', `/v1/images/${encodeURIComponent(id)}/${part}`, { body: data as BodyInit, type: 'application/octet-stream' }, { timeoutMs: 30 * 60_000, ...o })
    await res.body?.cancel()
  }

  /** vmlinux, initrd and/or rootfs.ext4 in one zip or tar(.gz). */
  async uploadBundle(id: string, data: UploadBody, type: 'application/zip' | 'application/gzip' | 'application/x-tar' = 'application/gzip', o: RequestOptions = {}): Promise<void> {
    const res = await this.http.send('PUT', `/v1/images/${encodeURIComponent(id)}/bundle`, { body: data as BodyInit, type }, { timeoutMs: 30 * 60_000, ...o })
    await res.body?.cancel()
  }

  async setDefault(id: string, o: RequestOptions = {}): Promise<void> {
    await this.http.json('POST', `/v1/images/${encodeURIComponent(id)}/set-default`, undefined, o)
  }

  /** Refused (409 `image_in_use`) while a VM or a user snapshot uses it. */
  async delete(id: string, o: RequestOptions = {}): Promise<void> {
    await this.http.json('DELETE', `/v1/images/${encodeURIComponent(id)}`, undefined, o)
  }
}
