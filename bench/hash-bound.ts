// The raw hash bound: argon2id verifications per second on every core, with no HTTP and no database, through
// @node-rs/argon2 (the library gatehouse hashes with) at the parameters gatehouse stores (OWASP's: m = 19456 KiB,
// t = 2, p = 1). No log-in can be faster than this.
import os from 'node:os'
import { hash, verify } from '@node-rs/argon2'

/** The parameters, stated here rather than imported, so a change in src/ cannot move the yardstick. */
export const HASH_BOUND_PARAMETERS = { memoryCost: 19_456, timeCost: 2, parallelism: 1 }

const PASSWORD = 'hash-bound password 1234'

export interface HashBound {
  /** Verifications completed per second. */
  rate: number
  concurrency: number
  seconds: number
}

/** Twice as many verifications in flight as cores, so the thread pool never waits for this loop to refill it. */
export const HASH_BOUND_CONCURRENCY = os.availableParallelism() * 2

let storedHash: Promise<string> | null = null

export async function measureHashBound(seconds: number, concurrency = HASH_BOUND_CONCURRENCY): Promise<HashBound> {
  storedHash ??= hash(PASSWORD, HASH_BOUND_PARAMETERS)
  const passwordHash = await storedHash
  let completed = 0
  const startedAt = performance.now()
  const deadline = startedAt + seconds * 1000
  let endedAt = startedAt
  // Each lane starts its next verification as soon as its last one ends; only those finished by the
  // deadline count, over the time up to the last of them.
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        if (!(await verify(passwordHash, PASSWORD))) throw new Error('argon2id verify said no to the right password')
        const now = performance.now()
        if (now <= deadline) {
          completed += 1
          endedAt = Math.max(endedAt, now)
        }
      }
    }),
  )
  const elapsed = (endedAt - startedAt) / 1000
  return { rate: completed / elapsed, concurrency, seconds: elapsed }
}
