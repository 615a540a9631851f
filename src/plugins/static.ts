// Static assets (the stylesheet and the icon) from public/ under /assets/, with @fastify/static.
// Registered beside the pages' context (see buildApp), so asset requests get the security headers
// but never read, create or touch a session.
// @see https://github.com/fastify/fastify-static
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'
import { PROJECT_ROOT } from '../paths.js'

export const ASSETS_PREFIX = '/assets/'

export default async function staticPlugin(app: FastifyInstance) {
  await app.register(fastifyStatic, {
    root: `${PROJECT_ROOT}public`,
    prefix: ASSETS_PREFIX,
    // Nothing in the app sends files by hand; no reply.sendFile decorator to leak into other plugins.
    decorateReply: false,
    index: false,
    // One route per file found at start: any other /assets/ path is the app's ordinary 404.
    wildcard: false,
    // Unhashed file names: browsers revalidate with the ETag (a 304 costs nothing) instead of keeping
    // yesterday's stylesheet after a deploy.
    maxAge: 0,
  })
}
