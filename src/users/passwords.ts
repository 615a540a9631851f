// argon2id, on libuv's thread pool so the event loop stays free. OWASP's minimum is the floor; the
// configured parameters may be stronger, and hashes made weaker are upgraded at the next log-in.
import { hash, verify } from '@node-rs/argon2'
import pLimit, { type LimitFunction } from 'p-limit'

export interface Argon2Parameters {
  /** KiB */
  memoryCost: number
  timeCost: number
  parallelism: number
}

/** OWASP Password Storage Cheat Sheet: argon2id, m = 19 MiB, t = 2, p = 1. */
export const OWASP_ARGON2: Argon2Parameters = { memoryCost: 19_456, timeCost: 2, parallelism: 1 }

export function hashPassword(password: string, parameters: Argon2Parameters = OWASP_ARGON2): Promise<string> {
  return hash(password, parameters)
}

/** False for a wrong password and for a hash that cannot be read; never throws on bad input. */
export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password)
  } catch {
    return false
  }
}

const ARGON2ID_PHC = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$/

/** True when the stored hash is not argon2id, or any of its parameters is weaker than the configured ones. */
export function needsRehash(passwordHash: string, parameters: Argon2Parameters): boolean {
  const match = ARGON2ID_PHC.exec(passwordHash)
  if (!match) return true
  const [memoryCost, timeCost, parallelism] = match.slice(1).map(Number) as [number, number, number]
  return memoryCost < parameters.memoryCost || timeCost < parameters.timeCost || parallelism < parameters.parallelism
}

// Verified against when the email is unknown, so that answer costs the same hashing work as a wrong password.
const dummyHashes = new Map<string, Promise<string>>()
export function dummyPasswordHash(parameters: Argon2Parameters): Promise<string> {
  const key = `${parameters.memoryCost},${parameters.timeCost},${parameters.parallelism}`
  let dummy = dummyHashes.get(key)
  if (!dummy) {
    dummy = hashPassword('gatehouse-dummy-password-for-unknown-emails', parameters)
    dummyHashes.set(key, dummy)
  }
  return dummy
}

/**
 * The app's hashing: the configured parameters, and at most `maxConcurrent` hashes at a time. Each one
 * takes a core and 19 MiB for tens of milliseconds; more of them than cores only queue in the thread pool
 * and take memory, and left unbounded a log-in storm takes every core from the event loop and the pages it
 * serves. Waiting hashes queue here, in order.
 */
export class PasswordHasher {
  readonly parameters: Argon2Parameters
  readonly #limit: LimitFunction

  constructor(parameters: Argon2Parameters, maxConcurrent: number) {
    this.parameters = parameters
    this.#limit = pLimit(maxConcurrent)
  }

  hash(password: string): Promise<string> {
    return this.#limit(() => hashPassword(password, this.parameters))
  }

  verify(passwordHash: string, password: string): Promise<boolean> {
    return this.#limit(() => verifyPassword(passwordHash, password))
  }

  /** Verifies against the dummy hash: what an unknown email costs, the same as a wrong password. */
  async verifyDummy(password: string): Promise<boolean> {
    return this.verify(await dummyPasswordHash(this.parameters), password)
  }

  needsRehash(passwordHash: string): boolean {
    return needsRehash(passwordHash, this.parameters)
  }

  /** Hashes being computed and waiting, for logs and tests. */
  get load(): { active: number; waiting: number } {
    return { active: this.#limit.activeCount, waiting: this.#limit.pendingCount }
  }
}
