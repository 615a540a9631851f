// A password-hashing thread (see PasswordHasher). The first `normalPriorityThreads` threads to start keep
// the normal scheduling priority: in a log-in storm they get their fair share of the CPU, so log-ins keep
// going. Every other thread lowers its own priority first: when the event loop has work it gets the core
// at once, and these threads take whatever CPU is left. So a storm uses every idle core without making
// page views wait behind it.
import { readlinkSync } from 'node:fs'
import os from 'node:os'
import { workerData } from 'node:worker_threads'
import { hashSync, verifySync } from '@node-rs/argon2'
import type { Argon2Parameters } from './passwords.js'

export interface HashWorkerData {
  /** The nice value the low-priority threads take (0 to 19; higher yields more). Lowering needs no privilege. */
  nice: number
  /** How many threads keep the normal priority. */
  normalPriorityThreads: number
  /** One counter shared by the pool's threads: how many have started. */
  started: Int32Array
}

function lowerOwnPriority(nice: number): void {
  if (nice <= 0) return
  try {
    // Linux: /proc/thread-self names this thread's id, and setpriority on a thread id affects that thread only.
    const threadId = Number(readlinkSync('/proc/thread-self').split('/').pop())
    if (Number.isInteger(threadId)) os.setPriority(threadId, nice)
  } catch {
    // Not Linux, or no /proc: hashing runs at normal priority; the concurrency limit still applies.
  }
}
const settings = workerData as HashWorkerData
// A thread that replaces one that died counts as a new one: it yields, which can only favour page views.
if (Atomics.add(settings.started, 0, 1) >= settings.normalPriorityThreads) lowerOwnPriority(settings.nice)

export type HashTask =
  | { kind: 'hash'; password: string; parameters: Argon2Parameters }
  | { kind: 'verify'; passwordHash: string; password: string }

export default function run(task: HashTask): string | boolean {
  if (task.kind === 'hash') return hashSync(task.password, task.parameters)
  try {
    return verifySync(task.passwordHash, task.password)
  } catch {
    // A hash that cannot be read is a wrong password, never a crash.
    return false
  }
}
