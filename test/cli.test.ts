import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { test } from 'node:test'
import { sql } from 'kysely'
import { openDatabase } from '../src/db/database.js'
import type { User } from '../src/db/schema.js'
import { logIn, PASSWORD, startTestApp, TEST_SECRET, uniqueEmail } from './helpers/app.js'
import { type CliResult, runCli } from './helpers/cli.js'

const testApp = await startTestApp()
// On PGlite the CLI and an app may not share the data folder: the tests start an app only when they need one.
await testApp.close()

/** `npm run user -- …` from source, with `input` on standard input. */
function runUserCli(args: string[], input = ''): Promise<CliResult> {
  return runCli('user', testApp.database, args, input)
}

function createUserCli(email: string, password = PASSWORD, role?: string): Promise<CliResult> {
  return runUserCli(['create', '--email', email, ...(role === undefined ? [] : ['--role', role])], `${password}\n`)
}

function assertRefused(result: CliResult, pattern: RegExp): void {
  assert.notEqual(result.code, 0, `a non-zero exit (stdout: ${result.stdout})`)
  assert.match(result.stderr, pattern)
}

function assertOneLine(stderr: string): void {
  const lines = stderr.trim().split('\n')
  assert.equal(lines.length, 1, `one line on stderr: ${stderr}`)
}

/** Reads the users table with the CLI stopped (PGlite admits one opener at a time). */
async function usersWithEmail(email: string): Promise<User[]> {
  const handle = await openDatabase({
    databaseUrl: testApp.database.env.DATABASE_URL ?? null,
    dataDir: testApp.database.env.DATA_DIR,
  })
  try {
    return await handle.db
      .selectFrom('users')
      .selectAll()
      .where(sql<string>`lower(email)`, '=', email.toLowerCase())
      .execute()
  } finally {
    await handle.close()
  }
}

test('user create hashes with the configured ARGON2_* parameters, as the server would', async () => {
  const email = uniqueEmail('cli-argon2')
  const result = await runCli('user', testApp.database, ['create', '--email', email], `${PASSWORD}\n`, {
    ARGON2_MEMORY_KIB: '19457',
    ARGON2_TIME_COST: '3',
  })
  assert.equal(result.code, 0, result.stderr)
  const [user] = await usersWithEmail(email)
  assert.ok(user, 'the user row exists')
  assert.match(user.password_hash, /^\$argon2id\$v=19\$m=19457,t=3,p=1\$/)
})

test('user create makes a user with role user and an argon2id hash', async () => {
  const email = uniqueEmail('cli')
  const result = await createUserCli(email)
  assert.equal(result.code, 0, result.stderr)
  assert.match(result.stdout, new RegExp(email.replaceAll('.', '\\.')))
  const [user, ...others] = await usersWithEmail(email)
  assert.ok(user, 'the user row exists')
  assert.deepEqual(others, [])
  assert.equal(user.role, 'user')
  assert.match(user.password_hash, /^\$argon2id\$/)
})

test('user create --role admin makes an admin who can log in and open /admin', async () => {
  const email = uniqueEmail('cli-admin')
  const result = await createUserCli(email, PASSWORD, 'admin')
  assert.equal(result.code, 0, result.stderr)
  assert.equal((await usersWithEmail(email))[0]?.role, 'admin')

  const app = await testApp.restart()
  try {
    const { browser, response } = await logIn(app, email)
    assert.equal(response.location, '/profile')
    assert.equal((await browser.get('/admin')).status, 200)
  } finally {
    await app.close()
  }
})

test('user create refuses an email already registered, in any case, with one line', async () => {
  const email = uniqueEmail('cli-dup')
  assert.equal((await createUserCli(email)).code, 0)
  const result = await createUserCli(email.toUpperCase())
  assertRefused(result, /already exists/)
  assertOneLine(result.stderr)
  assert.equal((await usersWithEmail(email)).length, 1)
})

test('user create refuses a password shorter than 8 characters', async () => {
  const email = uniqueEmail('cli-weak')
  assertRefused(await createUserCli(email, 'short'), /at least 8 characters/)
  assert.deepEqual(await usersWithEmail(email), [])
})

test('user create refuses a malformed email', async () => {
  assertRefused(await createUserCli('not-an-email'), /valid email/)
  assert.deepEqual(await usersWithEmail('not-an-email'), [])
})

test('user create refuses an unknown role, naming --role', async () => {
  const email = uniqueEmail('cli-role')
  assertRefused(await createUserCli(email, PASSWORD, 'root'), /--role/)
  assert.deepEqual(await usersWithEmail(email), [])
})

test('user set-role changes the role of an existing user', async () => {
  const email = uniqueEmail('cli-promote')
  assert.equal((await createUserCli(email)).code, 0)
  const result = await runUserCli(['set-role', '--email', email.toUpperCase(), '--role', 'admin'])
  assert.equal(result.code, 0, result.stderr)
  assert.equal((await usersWithEmail(email))[0]?.role, 'admin')
})

test('user set-role refuses an unknown email', async () => {
  const result = await runUserCli(['set-role', '--email', uniqueEmail('cli-nobody'), '--role', 'admin'])
  assertRefused(result, /No user has the email/)
  assertOneLine(result.stderr)
})

test('user without --email exits non-zero with the usage', async () => {
  assertRefused(await runUserCli(['create'], `${PASSWORD}\n`), /usage:/)
  assertRefused(await runUserCli(['set-role', '--role', 'admin']), /usage:/)
})

test('the CLI refuses an embedded data folder in use by a running app, and runs beside a PostgreSQL server', async () => {
  const email = uniqueEmail('cli-beside')
  const app = await testApp.restart()
  let result: CliResult
  try {
    result = await createUserCli(email)
    if (app.database.face === 'postgres') {
      assert.equal(result.code, 0, result.stderr)
      const { response } = await logIn(app, email)
      assert.equal(response.location, '/profile', 'the running app sees the new user at once')
    }
  } finally {
    await app.close()
  }
  if (app.database.face === 'pglite') {
    assertRefused(result, /in use/)
    assertOneLine(result.stderr)
    assert.deepEqual(await usersWithEmail(email), [], 'the database is untouched')
  }
})

/** util-linux `script`: runs a command under a pseudo-terminal and copies what the terminal shows. */
const SCRIPT = '/usr/bin/script'

function shellQuote(word: string): string {
  return `'${word.replaceAll("'", "'\\''")}'`
}

/** `npm run user -- …` on a terminal: types `keys` once the prompt shows; stdout is the terminal's transcript. */
function runUserCliOnTerminal(args: string[], keys: string): Promise<CliResult> {
  const command = [process.execPath, '--import', 'tsx', 'src/cli/user.ts', ...args].map(shellQuote).join(' ')
  return new Promise((resolve, reject) => {
    const child = spawn(SCRIPT, ['-qec', command, '/dev/null'], {
      cwd: new URL('..', import.meta.url),
      // The environment test/helpers/cli.ts gives the CLI.
      env: {
        ...process.env,
        DATABASE_URL: testApp.database.env.DATABASE_URL ?? '',
        DATA_DIR: testApp.database.env.DATA_DIR,
        SESSION_SECRET: TEST_SECRET,
        NODE_ENV: 'test',
      },
      timeout: 60_000,
    })
    let stdout = ''
    let stderr = ''
    let typed = false
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk
      if (!typed && stdout.includes('Password:')) {
        typed = true
        child.stdin.write(keys)
      }
    })
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

test('user create on a terminal reads the password without echoing it', async (t) => {
  if (!existsSync(SCRIPT)) {
    t.skip(`util-linux script is not at ${SCRIPT}: no pseudo-terminal to run the CLI on`)
    return
  }
  const email = uniqueEmail('cli-tty')
  const result = await runUserCliOnTerminal(['create', '--email', email], `${PASSWORD}\r`)
  assert.equal(result.code, 0, `transcript: ${JSON.stringify(result.stdout)} stderr: ${result.stderr}`)
  assert.match(result.stdout, /Password:/)
  assert.ok(!result.stdout.includes(PASSWORD), `the password is not echoed: ${JSON.stringify(result.stdout)}`)
  assert.equal((await usersWithEmail(email)).length, 1, 'the user row exists')

  const app = await testApp.restart()
  try {
    const { response } = await logIn(app, email)
    assert.equal(response.location, '/profile', 'the password typed is the one stored')
  } finally {
    await app.close()
  }
})
