// npm run user -- create --email E [--role user|admin]   (password: one line on standard input)
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

/** The first line of standard input, without its line ending. */
async function readPasswordLine(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('Password: ')
  let input = ''
  for await (const chunk of process.stdin) {
    input += chunk
    if (input.includes('\n')) break
  }
  return input.split(/\r?\n/, 1)[0] ?? ''
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
      const user = await createUser(db, { email: check.email, passwordHash, role })
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
