// npm run user -- create --email E [--role user|admin]   (password: typed without echo, or one line on standard input)
// npm run user -- set-role --email E --role R
import { parseArgs } from 'node:util'
import { migrateToLatest } from '../db/migrator.js'
import { ROLES, type Role } from '../db/schema.js'
import { RefusalError } from '../fatal.js'
import { checkCredentials } from '../users/credentials.js'
import { hashPassword } from '../users/passwords.js'
import { createUser, setUserRole } from '../users/repository.js'
import { loadCliConfig, runCli, withDatabase } from './run.js'

const USAGE = [
  'usage: npm run user -- create --email E [--role user|admin]   (reads the password from standard input)',
  '       npm run user -- set-role --email E --role user|admin',
].join('\n')

function parseRole(value: string | undefined, fallback?: Role): Role {
  if (value === undefined && fallback) return fallback
  if (ROLES.includes(value as Role)) return value as Role
  throw new RefusalError(`--role must be one of: ${ROLES.join(', ')}${value === undefined ? '' : ` (got "${value}")`}`)
}

/** The password: typed without echo on a terminal, else the first line of standard input. */
async function readPasswordLine(): Promise<string> {
  if (process.stdin.isTTY) return readHiddenLine(process.stdin)
  let input = ''
  for await (const chunk of process.stdin) {
    input += chunk
    if (input.includes('\n')) break
  }
  return input.split(/\r?\n/, 1)[0] ?? ''
}

/** A line typed on the terminal, read in raw mode so the terminal does not echo it; Ctrl-C exits 130. */
async function readHiddenLine(stdin: NodeJS.ReadStream): Promise<string> {
  // Raw before the prompt: whatever is typed once the prompt shows is never echoed.
  stdin.setRawMode(true)
  let line: string | null
  try {
    process.stderr.write('Password: ')
    line = await typedLine(stdin)
  } finally {
    // Whatever happened, the shell gets its terminal back as it was, on a line of its own.
    stdin.setRawMode(false)
    stdin.pause()
    process.stderr.write('\n')
  }
  if (line === null) process.exit(130)
  return line
}

/** Characters up to Enter, with backspace; null for Ctrl-C; Ctrl-D on an empty line ends the input. */
function typedLine(stdin: NodeJS.ReadStream): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chars: string[] = []
    const settle = (finish: () => void) => {
      stdin.off('data', onData).off('end', onEnd).off('error', onError)
      finish()
    }
    const onEnd = () => settle(() => resolve(chars.join('')))
    const onError = (error: Error) => settle(() => reject(error))
    function onData(chunk: string) {
      for (const char of chunk) {
        if (char === '\r' || char === '\n') return settle(() => resolve(chars.join('')))
        if (char === '\x03') return settle(() => resolve(null))
        if (char === '\x04' && chars.length === 0) return settle(() => resolve(''))
        if (char === '\x7f' || char === '\b') chars.pop()
        // Other control characters (Ctrl-D mid-line, the escape of an arrow key) are not part of a password.
        else if (char >= ' ') chars.push(char)
      }
    }
    stdin.setEncoding('utf8')
    stdin.on('data', onData).on('end', onEnd).on('error', onError)
    stdin.resume()
  })
}

runCli(async () => {
  let parsed: ReturnType<typeof parseOptions>
  try {
    parsed = parseOptions()
  } catch (error) {
    throw new RefusalError(`${(error as Error).message}\n${USAGE}`)
  }
  const { positionals, values } = parsed
  const command = positionals[0]
  if (!values.email) throw new RefusalError(`--email is required\n${USAGE}`)
  const email = values.email

  if (command === 'create') {
    const role = parseRole(values.role, 'user')
    const config = loadCliConfig()
    const check = checkCredentials(email, await readPasswordLine())
    if (!check.ok) throw new RefusalError(check.message)
    // The server's ARGON2_* parameters, so the hash is not upgraded at the user's first log-in.
    const passwordHash = await hashPassword(check.password, config.hashing.argon2)
    await withDatabase(config, async ({ db }) => {
      await migrateToLatest(db)
      const user = await createUser(db, { email: check.email, passwordHash, role, emailConfirmed: true })
      if (!user) throw new RefusalError(`A user with the email ${check.email} already exists.`)
      console.log(`Created ${user.role} ${user.email} (id ${user.id}).`)
    })
  } else if (command === 'set-role') {
    const role = parseRole(values.role)
    await withDatabase(loadCliConfig(), async ({ db }) => {
      await migrateToLatest(db)
      const user = await setUserRole(db, email, role)
      if (!user) throw new RefusalError(`No user has the email ${email.trim()}.`)
      console.log(`${user.email} is now ${user.role}.`)
    })
  } else {
    throw new RefusalError(USAGE)
  }
})

function parseOptions() {
  return parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: { email: { type: 'string' }, role: { type: 'string' } },
  })
}
