// Accounts: the password hasher's owner and the account decisions (log-in, sign-up, recovery, confirmation,
// the account's own settings) bound to this app's database, throttle and mail, so the forms, and later the
// API, call the same code.
import fp from 'fastify-plugin'
import {
  changePassword,
  confirmEmailChange,
  type DeleteAccountResult,
  deleteAccount,
  type EmailChangeResult,
  noticeNewBrowser,
  type PasswordChangeResult,
  requestEmailChange,
} from '../accounts/account-settings.js'
import { pruneExpiredTokens } from '../accounts/account-tokens.js'
import { confirmEmail, queueConfirmation } from '../accounts/email-confirmation.js'
import { type LogInResult, logIn } from '../accounts/log-in.js'
import { isResetLinkLive, type ResetResult, requestPasswordReset, resetPassword } from '../accounts/password-reset.js'
import { type SignUpResult, signUp } from '../accounts/sign-up.js'
import type { Config } from '../config.js'
import type { EventOrigin } from '../events/repository.js'
import { repeatWhileRunning } from '../periodic.js'
import type { AuthUser } from '../users/auth-user.js'
import { PasswordHasher } from '../users/passwords.js'

export interface Accounts {
  logIn(email: string, password: string): Promise<LogInResult>
  signUp(email: string, password: string): Promise<SignUpResult>
  /** Mail on only (the routes are not registered otherwise). Returns whether a link was queued. */
  requestPasswordReset(email: string): Promise<boolean>
  isResetLinkLive(token: string): Promise<boolean>
  resetPassword(token: string, password: string): Promise<ResetResult>
  /** Queues a new confirmation link for a logged-in user, within the hourly limit. */
  resendConfirmation(user: AuthUser): Promise<boolean>
  /** The confirmed user's id, or null when the link does not work. */
  confirmEmail(token: string): Promise<number | null>
  changePassword(
    user: AuthUser,
    currentPassword: string,
    newPassword: string,
    keepSessionId: string,
  ): Promise<PasswordChangeResult>
  requestEmailChange(user: AuthUser, newEmail: string, currentPassword: string): Promise<EmailChangeResult>
  confirmEmailChange(token: string): Promise<{ userId: number; email: string } | null>
  deleteAccount(user: AuthUser, currentPassword: string, origin: EventOrigin): Promise<DeleteAccountResult>
  noticeNewBrowser(user: AuthUser, seen: { browser: string; system: string; ip: string; at: Date }): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    accounts: Accounts
  }
}

export type AccountsOptions = Config['hashing'] & { requireConfirmation: boolean; pruneIntervalMs: number }

export default fp<AccountsOptions>(
  async function accountsPlugin(app, options) {
    const hasher = new PasswordHasher(options.argon2, {
      ...options,
      onQueueFull: () =>
        app.log.warn(
          { event: 'hash_queue_full', maxQueue: options.maxQueue },
          'password hashing queue full: log-ins and sign-ups are answered 503 until it drains',
        ),
    })
    app.addHook('onClose', () => hasher.close())
    const deps = {
      db: app.db,
      hasher,
      throttle: app.loginThrottle,
      mail: app.mail,
      emailDigest: app.emailDigest,
      requireConfirmation: options.requireConfirmation,
    }
    app.decorate('accounts', {
      logIn: (email, password) => logIn(deps, email, password),
      signUp: (email, password) => signUp(deps, email, password),
      requestPasswordReset: (email) => requestPasswordReset(deps, email),
      isResetLinkLive: (token) => isResetLinkLive(deps, token),
      resetPassword: (token, password) => resetPassword(deps, token, password),
      resendConfirmation: async (user) => {
        const queued = await queueConfirmation(deps, app.db, user)
        app.mail.wake()
        return queued
      },
      confirmEmail: (token) => confirmEmail(app.db, token),
      changePassword: (user, current, next, keep) => changePassword(deps, user, current, next, keep),
      requestEmailChange: (user, email, current) => requestEmailChange(deps, user, email, current),
      confirmEmailChange: (token) => confirmEmailChange(deps, token),
      deleteAccount: (user, current, origin) => deleteAccount(deps, user, current, origin),
      noticeNewBrowser: (user, seen) => noticeNewBrowser(deps, user, seen),
    } satisfies Accounts)

    repeatWhileRunning(app, {
      name: 'pruning expired links',
      intervalMs: options.pruneIntervalMs,
      run: () => pruneExpiredTokens(app.db),
    })
  },
  { name: 'accounts', dependencies: ['db', 'throttling', 'mail'] },
)
