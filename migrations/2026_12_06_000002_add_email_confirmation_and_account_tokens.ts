import { type Kysely, sql } from 'kysely'

// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and never see the app's types.
export async function up(db: Kysely<any>): Promise<void> {
  // Null until the address is confirmed. Accounts from before confirmation existed count as confirmed.
  await db.schema.alterTable('users').addColumn('email_confirmed_at', 'timestamptz').execute()
  await db.updateTable('users').set({ email_confirmed_at: sql`created_at` }).execute()

  // The links sent by mail: one live token per user and purpose (a new link replaces the last, so only the
  // latest works), stored only as the SHA-256 of the token.
  await db.schema
    .createTable('account_tokens')
    .addColumn('user_id', 'integer', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('purpose', 'text', (col) => col.notNull())
    .addColumn('token_hash', 'text', (col) => col.notNull().unique())
    // The address the link went to: a confirmation counts only while the account still has it.
    .addColumn('email', 'text', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    // Set when the link is used: it never works again, and a second submit of the same form can be told apart.
    .addColumn('used_at', 'timestamptz')
    .addPrimaryKeyConstraint('account_tokens_pkey', ['user_id', 'purpose'])
    .execute()
  await db.schema.createIndex('account_tokens_expires_at_idx').on('account_tokens').column('expires_at').execute()
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('account_tokens').execute()
  await db.schema.alterTable('users').dropColumn('email_confirmed_at').execute()
}
