// argon2id at OWASP's minimum (m = 19 MiB, t = 2, p = 1), on libuv's thread pool so the event loop stays free.
import { hash, verify } from '@node-rs/argon2'

export const ARGON2_PARAMETERS = { memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_PARAMETERS)
}

/** False for a wrong password and for a hash that cannot be read; never throws on bad input. */
export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password)
  } catch {
    return false
  }
}

// Verified against when the email is unknown, so that answer costs the same hashing work as a wrong password.
let dummyHash: Promise<string> | undefined
export function dummyPasswordHash(): Promise<string> {
  dummyHash ??= hashPassword('gatehouse-dummy-password-for-unknown-emails')
  return dummyHash
}
