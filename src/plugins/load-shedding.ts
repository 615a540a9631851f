// Load shedding with @fastify/under-pressure: when the event loop lags (or the heap grows) past the
// configured limits, answer 503 with Retry-After at once instead of letting requests queue into timeouts.
// Registered before the session plugin, so a shed request costs no database work.
// @see https://github.com/fastify/under-pressure
import fastifyUnderPressure from '@fastify/under-pressure'
import fp from 'fastify-plugin'
import type { Config } from '../config.js'

/** What every 503 tells clients to wait: a shed request, and a database outage alike. */
export const RETRY_AFTER_SECONDS = 5

export default fp<Config['overload']>(
  async function loadSheddingPlugin(app, options) {
    await app.register(fastifyUnderPressure, {
      // Mean event-loop delay over a sample, and heap in use; 0 turns a check off.
      maxEventLoopDelay: options.maxEventLoopDelayMs,
      maxHeapUsedBytes: options.maxHeapMb * 1024 * 1024,
      sampleInterval: 500,
      retryAfter: RETRY_AFTER_SECONDS,
    })
  },
  { name: 'load-shedding' },
)
