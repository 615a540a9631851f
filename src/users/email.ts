// The one canonical form of an email: what uniqueness, look-ups and every throttle key compare. NFKC folds
// look-alikes (fullwidth ａ, circled ⓐ) into their plain letters; lower-casing is JavaScript's, the same
// on every database server, where PostgreSQL's lower() depends on the server's ctype.
export function canonicalEmail(email: string): string {
  return email.trim().normalize('NFKC').toLowerCase().normalize('NFKC')
}
