import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after } from 'node:test'

/** A new, empty folder in the OS temp dir (`<prefix>-XXXXXX`), removed when the test file ends. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`))
  after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}
