// argon2id, never on the event loop: the app's hashing runs on low-priority threads of its own
// (PasswordHasher); the CLI and the one-off dummy hash use libuv's thread pool. OWASP's minimum is the
// floor; the configured parameters may be stronger, and hashes made weaker are upgraded at the next log-in.

import path from 'node:path'
import { fileURLToPath } from 'node:url'
import createError from '@fastify/error'
import { hash } from '@node-rs/argon2'
import { Piscina } from 'piscina'
import type { HashTask, HashWorkerData } from './hash-worker.js'

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

/** The hashing thread's module, beside this one: .js when built, .ts under tsx in development and tests. */
const HASH_WORKER = new URL(`./hash-worker${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url)

/** Hashing threads yield the CPU to the event loop whenever it has work (see ARGON2_THREAD_NICE). */
export const DEFAULT_HASH_THREAD_NICE = 19

export interface HashThreads {
  /** Threads, and so hashes computed at once. */
  maxConcurrent: number
  /** The low-priority threads' nice value (default 19). */
  threadNice?: number
  /** Threads that keep the normal priority (default none). */
  normalPriorityThreads?: number
  /** Hashes that may wait for a thread; past this, HashQueueFullError (default: no bound). */
  maxQueue?: number
  /** Called once when the queue first refuses a hash, and again only after it has drained (an episode). */
  onQueueFull?: () => void
}

/** A log-in or sign-up that would wait behind too many others: refused at once, nothing hashed. */
export const HashQueueFullError = createError(
  'GH_HASH_QUEUE_FULL',
  'gatehouse is very busy right now. Please try again in a few seconds.',
  503,
)

/**
 * The app's hashing: the configured parameters, on `maxConcurrent` threads of their own (Piscina). Each
 * hash takes a core and 19 MiB for tens of milliseconds. `normalPriorityThreads` of the threads keep the
 * normal scheduling priority, so a log-in storm always gets a fair share of the CPU; the others run at a
 * low one (nice 19 unless ARGON2_THREAD_NICE says otherwise, see hash-worker.ts) and take only idle cores,
 * so page views do not wait behind them.
 * Hashes beyond `maxConcurrent` wait their turn, in order, up to `maxQueue` of them: the work runs off the
 * event loop, so load shedding never sees it, and an unbounded queue would make every real log-in wait
 * behind a flood.
 */
export class PasswordHasher {
  readonly parameters: Argon2Parameters
  readonly #pool: Piscina<HashTask, string | boolean>
  readonly #capacity: number
  readonly #onQueueFull: () => void
  #inFlight = 0
  #refusing = false

  constructor(parameters: Argon2Parameters, threads: HashThreads) {
    const { maxConcurrent, threadNice = DEFAULT_HASH_THREAD_NICE, normalPriorityThreads = 0 } = threads
    this.parameters = parameters
    this.#capacity = maxConcurrent + (threads.maxQueue ?? Number.POSITIVE_INFINITY)
    this.#onQueueFull = threads.onQueueFull ?? (() => undefined)
    const workerData: HashWorkerData = {
      nice: threadNice,
      normalPriorityThreads,
      started: new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT)),
    }
    this.#pool = new Piscina({
      filename: HASH_WORKER.href,
      workerData,
      minThreads: maxConcurrent,
      maxThreads: maxConcurrent,
      // Threads stay: starting one costs more than several hashes.
      idleTimeout: Number.POSITIVE_INFINITY,
    })
  }

  /** Every thread busy and the queue at its bound: a new hash would be refused. */
  get saturated(): boolean {
    return this.#inFlight >= this.#capacity
  }

  async #run(task: HashTask): Promise<string | boolean> {
    if (this.saturated) {
      if (!this.#refusing) this.#onQueueFull()
      this.#refusing = true
      throw new HashQueueFullError()
    }
    this.#inFlight += 1
    try {
      return await this.#pool.run(task)
    } finally {
      this.#inFlight -= 1
      // The episode ends once everything waiting has been served.
      if (this.#inFlight === 0) this.#refusing = false
    }
  }

  async hash(password: string): Promise<string> {
    return String(await this.#run({ kind: 'hash', password, parameters: this.parameters }))
  }

  async verify(passwordHash: string, password: string): Promise<boolean> {
    return (await this.#run({ kind: 'verify', passwordHash, password })) === true
  }

  /** Verifies against the dummy hash: what an unknown email costs, the same as a wrong password. */
  async verifyDummy(password: string): Promise<boolean> {
    return this.verify(await dummyPasswordHash(this.parameters), password)
  }

  needsRehash(passwordHash: string): boolean {
    return needsRehash(passwordHash, this.parameters)
  }

  /** Hashes being computed and waiting, for tests. */
  get load(): { active: number; waiting: number } {
    const waiting = this.#pool.queueSize
    return { active: this.#inFlight - waiting, waiting }
  }

  close(): Promise<void> {
    return this.#pool.destroy()
  }
}
