// Runs one of the CLI commands from source, the way `npm run user` / `npm run migrate` would.
import { spawn } from 'node:child_process'
import type { TestDatabase } from '../../support/test-database.js'
import { TEST_SECRET } from './app.js'

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** `script` is a file under src/cli/ (e.g. 'user'); `input` goes to standard input; `env` adds variables. */
export function runCli(
  script: 'user' | 'migrate',
  database: TestDatabase,
  args: string[],
  input = '',
  env: Record<string, string> = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', `src/cli/${script}.ts`, ...args], {
      cwd: new URL('../..', import.meta.url),
      env: {
        ...process.env,
        // Empty means unset, and it keeps a stray .env or shell DATABASE_URL from choosing the database.
        DATABASE_URL: database.env.DATABASE_URL ?? '',
        DATA_DIR: database.env.DATA_DIR,
        SESSION_SECRET: TEST_SECRET,
        NODE_ENV: 'test',
        ...env,
      },
      timeout: 60_000,
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk
    })
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(input)
  })
}
