import type { Kysely } from 'kysely'

// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time and never see the app's types.
export async function up(db: Kysely<any>): Promise<void> {
  // Fixed-window counters shared by every instance: failed log-ins per email, auth POSTs per address.
  await db.schema
    .createTable('auth_counters')
    .addColumn('key', 'text', (col) => col.primaryKey())
    .addColumn('count', 'integer', (col) => col.notNull())
    .addColumn('window_ends_at', 'timestamptz', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('auth_counters_window_ends_at_idx').on('auth_counters').column('window_ends_at').execute()
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('auth_counters').execute()
}
