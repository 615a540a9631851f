import { type Kysely, sql } from 'kysely'

// The email's one canonical form, for uniqueness, look-ups and throttle keys. Computed in the app, not by
// PostgreSQL's lower(), whose result depends on the server's ctype (İ, U+0130, lowers to i under C.UTF-8
// but not in JavaScript). A frozen copy of src/users/email.ts's canonicalEmail, as of this migration.
function canonicalEmail(email: string): string {
  return email.trim().normalize('NFKC').toLowerCase().normalize('NFKC')
}

// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and never see the app's types.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').addColumn('email_canonical', 'text').execute()
  const users = await db.selectFrom('users').select(['id', 'email']).execute()
  for (const user of users) {
    await db
      .updateTable('users')
      .set({ email_canonical: canonicalEmail(user.email) })
      .where('id', '=', user.id)
      .execute()
  }
  await db.schema
    .alterTable('users')
    .alterColumn('email_canonical', (col) => col.setNotNull())
    .execute()
  // Two existing accounts whose emails share a canonical form stop the migration here, naming the index.
  await db.schema.createIndex('users_email_canonical_key').on('users').column('email_canonical').unique().execute()
  await db.schema.dropIndex('users_email_lower_key').execute()
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('users_email_lower_key').on('users').unique().expression(sql`lower(email)`).execute()
  await db.schema.dropIndex('users_email_canonical_key').execute()
  await db.schema.alterTable('users').dropColumn('email_canonical').execute()
}
