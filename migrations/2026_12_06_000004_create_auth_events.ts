import { type Kysely, sql } from 'kysely'

// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and never see the app's types.
export async function up(db: Kysely<any>): Promise<void> {
  // The accounts' history: what happened, to which account, by whom, from where. An account's events go with
  // it when it is deleted (only the deletion itself stays, without the account); AUDIT_RETENTION_DAYS prunes
  // the rest.
  await db.schema
    .createTable('auth_events')
    .addColumn('id', 'bigserial', (col) => col.primaryKey())
    .addColumn('type', 'text', (col) => col.notNull())
    .addColumn('user_id', 'integer', (col) => col.references('users.id').onDelete('cascade'))
    // Who acted, when it was not the account's owner (an admin).
    .addColumn('actor_id', 'integer', (col) => col.references('users.id').onDelete('set null'))
    // A failed log-in for an email without an account: its keyed digest, never the address.
    .addColumn('email_hash', 'text')
    .addColumn('ip', 'text')
    // The browser's family and system, from the User-Agent ("Chrome", "Linux"): what "a new browser" compares.
    .addColumn('browser', 'text')
    .addColumn('system', 'text')
    .addColumn('details', 'jsonb', (col) => col.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('auth_events_user_id_idx').on('auth_events').columns(['user_id', 'id']).execute()
  await db.schema.createIndex('auth_events_created_at_idx').on('auth_events').column('created_at').execute()
  // The log-in's question, "has this account used this browser before?", as one probe however long the
  // account's history (src/events/repository.ts, insertLogIn).
  await db.schema
    .createIndex('auth_events_known_browsers_idx')
    .on('auth_events')
    .columns(['user_id', 'browser', 'system'])
    .where(sql.ref('type'), 'in', sql`('login', 'signup')`)
    .execute()
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('auth_events').execute()
}
