// npm run user -- create --email E [--role user|admin]   (password: one line on standard input)
// npm run user -- set-role --email E --role R
import { parseArgs } from 'node:util'
import { migrateToLatest } from '../db/migrator.js'
import { ROLES, type Role } from '../db/schema.js'
import { checkCredentials } from '../users/credentials.js'
import { hashPassword } from '../users/passwords.js'
import { createUser, setUserRole } from '../users/repository.js'
import { CliError, runCli, withDatabase } from './run.js'

const USAGE = [
  'usage: npm run user -- create --email E [--role user|admin]   (reads the password from standard input)',
  '       npm run user -- set-role --email E --role user|admin',
].join('\n')

function parseRole(value: string | undefined, fallback?: Role): Role {
  if (value === undefined && fallback) return fallback
  if (ROLES.includes(value as Role)) return value as Role
  throw new CliError(`--role must be one of: ${ROLES.join(', ')}${value === undefined ? '' : ` (got "${value}")`}`)
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
    throw new CliError(`${(error as Error).message}\n${USAGE}`)
  }
  const { positionals, values } = parsed
  const command = positionals[0]
  if (!values.email) throw new CliError(`--email is required\n${USAGE}`)
  const email = values.email

  if (command === 'create') {
    const role = parseRole(values.role, 'user')
    const check = checkCredentials(email, await readPasswordLine())
    if (!check.ok) throw new CliError(check.message)
    const passwordHash = await hashPassword(check.password)
    await withDatabase(async ({ db }) => {
      await migrateToLatest(db)
      const user = await createUser(db, { email: check.email, passwordHash, role })
      if (!user) throw new CliError(`A user with the email ${check.email} already exists.`)
      console.log(`Created ${user.role} ${user.email} (id ${user.id}).`)
    })
  } else if (command === 'set-role') {
    const role = parseRole(values.role)
    await withDatabase(async ({ db }) => {
      await migrateToLatest(db)
      const user = await setUserRole(db, email, role)
      if (!user) throw new CliError(`No user has the email ${email.trim()}.`)
      console.log(`${user.email} is now ${user.role}.`)
    })
  } else {
    throw new CliError(USAGE)
  }
})

function parseOptions() {
  return parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: { email: { type: 'string' }, role: { type: 'string' } },
  })
}
