// PUT /v1/images/:id/bundle and the per-part uploads, through the real app and a real store.
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { FastifyInstance } from 'fastify'
import { testApp } from '../harness/app.ts'
import { tarGz } from '../harness/archives.ts'

const KEY = 'k'
let app: FastifyInstance
let root: string
let close: () => Promise<void>

beforeAll(async () => {
  ;({ app, root, close } = await testApp(KEY))
})
afterAll(() => close())

/** A minimal zip (stored, no compression) so the test needs no zip tool. */
function zip(files: Record<string, string>): Buffer {
  const locals: Buffer[] = []
  const centrals: Buffer[] = []
  let offset = 0
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.from(content)
    const n = Buffer.from(name)
    const crc = zlib.crc32(data)
    const local = Buffer.alloc(30)
    local.writeUInt32LE(0x04034b50, 0)
    local.writeUInt16LE(20, 4)
    local.writeUInt32LE(crc, 14)
    local.writeUInt32LE(data.length, 18)
    local.writeUInt32LE(data.length, 22)
    local.writeUInt16LE(n.length, 26)
    const central = Buffer.alloc(46)
    central.writeUInt32LE(0x02014b50, 0)
    central.writeUInt16LE(20, 4)
    central.writeUInt16LE(20, 6)
    central.writeUInt32LE(crc, 16)
    central.writeUInt32LE(data.length, 20)
    central.writeUInt32LE(data.length, 24)
    central.writeUInt16LE(n.length, 28)
    central.writeUInt32LE(offset, 42)
    locals.push(local, n, data)
    centrals.push(central, n)
    offset += 30 + n.length + data.length
  }
  const cd = Buffer.concat(centrals)
  const end = Buffer.alloc(22)
  end.writeUInt32LE(0x06054b50, 0)
  end.writeUInt16LE(Object.keys(files).length, 8)
  end.writeUInt16LE(Object.keys(files).length, 10)
  end.writeUInt32LE(cd.length, 12)
  end.writeUInt32LE(offset, 16)
  return Buffer.concat([...locals, cd, end])
}


async function newImage(): Promise<string> {
  const r = await app.inject({ method: 'POST', url: '/v1/images', headers: { 'x-api-key': KEY }, payload: { name: 'n', description: 'd' } })
  return r.json().id
}

const put = (url: string, payload: Buffer, type = 'application/octet-stream') => app.inject({ method: 'PUT', url, headers: { 'x-api-key': KEY, 'content-type': type }, payload })
const image = async (id: string) => (await app.inject({ method: 'GET', url: '/v1/images', headers: { 'x-api-key': KEY } })).json().find((i: { id: string }) => i.id === id)

it('takes a zip bundle with the parts under a directory', async () => {
  const id = await newImage()
  const r = await put(`/v1/images/${id}/bundle`, zip({ 'img/vmlinux': 'K', 'img/initrd': 'I', 'img/rootfs.ext4': 'ROOTFS', 'img/README': 'ignored' }), 'application/zip')
  expect(r.statusCode, r.body).toBe(204)
  expect(await image(id)).toMatchObject({ hasKernel: true, hasInitrd: true, hasRootfs: true, baseRootfsBytes: 6 })
  expect(fs.readFileSync(path.join(root, 'images', id, 'rootfs.ext4'), 'utf8')).toBe('ROOTFS')
  expect(fs.readdirSync(path.join(root, 'images', id)).sort()).toEqual(['initrd', 'rootfs.ext4', 'vmlinux'])
})

it('takes a tar.gz bundle and never uses an entry path as a destination', async () => {
  const id = await newImage()
  const r = await put(`/v1/images/${id}/bundle`, tarGz({ 'x/../../vmlinux': 'nope', 'a/vmlinux': 'K2' }), 'application/gzip')
  expect(r.statusCode, r.body).toBe(204)
  expect(fs.readFileSync(path.join(root, 'images', id, 'vmlinux'), 'utf8')).toBe('K2')
  expect(fs.existsSync(path.join(root, 'vmlinux'))).toBe(false)
})

it('refuses a bundle without known parts or that is no archive, leaving nothing', async () => {
  const id = await newImage()
  const empty = await put(`/v1/images/${id}/bundle`, zip({ 'other.txt': 'x' }), 'application/zip')
  expect(empty.statusCode).toBe(400)
  expect(empty.json().message).toBe('Zip must contain vmlinux and/or rootfs.ext4 (initrd optional)')
  const junk = await put(`/v1/images/${id}/bundle`, Buffer.from('PK\x03\x04garbage'), 'application/zip')
  expect(junk.statusCode).toBe(400)
  expect(fs.readdirSync(path.join(root, 'images', id))).toEqual([])
})

it('streams single parts with PUT kernel|initrd|rootfs', async () => {
  const id = await newImage()
  for (const part of ['kernel', 'initrd', 'rootfs']) expect((await put(`/v1/images/${id}/${part}`, Buffer.from(part))).statusCode).toBe(204)
  expect(await image(id)).toMatchObject({ hasKernel: true, hasInitrd: true, hasRootfs: true, baseRootfsBytes: 6 })
  expect((await put(`/v1/images/nope/kernel`, Buffer.from('x'))).statusCode).toBe(404)
})
