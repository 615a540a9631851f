// Sustained load and session memory (reliability issue, item 6): the two bench scripts, run as they are.
// They take minutes, so they run only with LOAD_TEST=1 (as .ci/run does), each on a fresh database of its
// own: a PGlite copy, or a new PostgreSQL database when TEST_DATABASE_URL is set.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'

const ROOT = new URL('..', import.meta.url)
const SKIP_REASON = 'set LOAD_TEST=1 (CI does) to run the 30 s load and the 100k-session memory check'
const skip = process.env.LOAD_TEST === '1' ? false : SKIP_REASON

interface ScriptRun {
  code: number | null
  output: string
  seconds: number
}

/** Runs a bench script to its end; the database is its own choice (DATABASE_URL is cleared). */
async function runBench(script: string, env: Record<string, string>): Promise<ScriptRun> {
  const startedAt = Date.now()
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk
  })
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk
  })
  const code = await new Promise<number | null>((resolve) => child.once('close', (exitCode) => resolve(exitCode)))
  return { code, output, seconds: (Date.now() - startedAt) / 1000 }
}

function report(t: { diagnostic(message: string): void }, run: ScriptRun): void {
  for (const line of run.output.trimEnd().split('\n')) t.diagnostic(line)
  t.diagnostic(`(script ran ${run.seconds.toFixed(1)} s, exit code ${run.code})`)
}

test('100 clients signing up, logging in, reading their profile and logging out for 30 s get no 5xx and lose no session', {
  skip,
  timeout: 5 * 60_000,
}, async (t) => {
  const run = await runBench('bench/load.ts', { LOAD_SECONDS: '30', LOAD_CLIENTS: '100' })
  report(t, run)
  assert.match(run.output, /^5xx answers\s+0$/m)
  assert.match(run.output, /^lost sessions\s+0 /m)
  assert.equal(run.code, 0, 'bench/load.ts exits 0')
})

test('after 100,000 sessions created and pruned the server RSS is within 15% of its RSS after the first 10,000', {
  skip,
  timeout: 30 * 60_000,
}, async (t) => {
  const run = await runBench('bench/session-memory.ts', { SESSIONS_TOTAL: '100000' })
  report(t, run)
  assert.match(run.output, /^sessions created\s+100,000$/m)
  assert.match(run.output, /^session rows once expired and pruned\s+0$/m)
  assert.equal(run.code, 0, 'bench/session-memory.ts exits 0')
})
