// Development without SESSION_SECRET: one random secret, generated once and kept beside the data,
// so sessions survive restarts without anyone having to invent a secret.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'

export async function developmentSessionSecret(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'session-secret')
  try {
    const existing = (await fs.readFile(file, 'utf8')).trim()
    if (existing.length >= 32) return existing
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  await fs.mkdir(dataDir, { recursive: true })
  const secret = randomBytes(32).toString('base64url')
  await fs.writeFile(file, `${secret}\n`, { mode: 0o600 })
  return secret
}
