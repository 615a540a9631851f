// A @fastify/rate-limit store on auth_counters, so every instance on one database shares the counts.
// @see https://github.com/fastify/fastify-rate-limit#custom-store
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.js'
import { incrementCounter } from './counters.js'

type IncrCallback = (error: Error | null, result?: { current: number; ttl: number }) => void

export interface RateLimitStore {
  incr(key: string, callback: IncrCallback, timeWindow: number, max: number): void
  child(): RateLimitStore
}

/** @fastify/rate-limit constructs its store with `new`, so the database comes in through a class made here. */
export function postgresRateLimitStore(db: Kysely<Database>): new () => RateLimitStore {
  return class PostgresRateLimitStore implements RateLimitStore {
    incr(key: string, callback: IncrCallback, timeWindow: number): void {
      incrementCounter(db, `rate:${key}`, timeWindow).then(
        (state) => callback(null, { current: state.count, ttl: state.ttlMs }),
        (error: Error) => callback(error),
      )
    }

    child(): RateLimitStore {
      return this
    }
  }
}
