// nginx in front of real instances, the way deploy/nginx/gatehouse.conf ships: a self-signed certificate
// made with openssl, the shipped site config with only its addresses rewritten, and an nginx of our own
// (own prefix, own free ports, every temp and log path in a temp folder), plus an HTTPS cookie-jar client.
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { connect, isIP } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { Browser, Page, type RequestOptions } from '../../support/browser.js'
import { freePort } from '../../support/free-port.js'

const run = promisify(execFile)

export const SHIPPED_SITE_CONFIG = new URL('../../deploy/nginx/gatehouse.conf', import.meta.url).pathname

/** A program on PATH (or in the sbin folders a non-login root shell may lack), or null. */
function findProgram(name: string): string | null {
  const folders = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin']
  for (const folder of folders.filter(Boolean)) {
    const candidate = path.join(folder, name)
    try {
      fs.accessSync(candidate, fs.constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return null
}

/** Why nginx cannot run here, or null when it can. */
export function nginxUnavailable(): string | null {
  if (!findProgram('nginx')) return 'nginx is not installed (apt-get install nginx)'
  if (!findProgram('openssl')) return 'openssl is not installed (apt-get install openssl)'
  return null
}

function nginxBinary(): string {
  const binary = findProgram('nginx')
  if (!binary) throw new Error('nginx is not installed')
  return binary
}

export interface Certificate {
  certFile: string
  keyFile: string
  /** The certificate itself (PEM), which a client trusts as its only CA: proof that TLS really is checked. */
  pem: string
}

/** A self-signed certificate for localhost and 127.0.0.1, valid two days. */
export async function makeCertificate(dir: string): Promise<Certificate> {
  const certFile = path.join(dir, 'fullchain.pem')
  const keyFile = path.join(dir, 'privkey.pem')
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ])
  return { certFile, keyFile, pem: fs.readFileSync(certFile, 'utf8') }
}

export interface SiteAddresses {
  /** `host:port` of each instance; they replace the shipped `server app:3000;`. */
  upstreams: string[]
  httpsPort: number
  httpPort: number
  certificate: Certificate
}

/** Replaces exactly one occurrence, so a reshaped shipped file fails the test instead of going untested. */
function replaceOnce(text: string, find: string, replacement: string): string {
  const count = text.split(find).length - 1
  if (count !== 1) throw new Error(`expected "${find}" once in ${SHIPPED_SITE_CONFIG}, found it ${count} times`)
  return text.replace(find, () => replacement)
}

/** The shipped site config with the container's names, ports and certificate paths replaced by ours. */
export function siteConfigFor(addresses: SiteAddresses): string {
  let site = fs.readFileSync(SHIPPED_SITE_CONFIG, 'utf8')
  const servers = addresses.upstreams.map((upstream) => `server ${upstream};`).join('\n    ')
  site = replaceOnce(site, 'server app:3000;', servers)
  site = replaceOnce(site, 'listen 443 ssl;', `listen 127.0.0.1:${addresses.httpsPort} ssl;`)
  site = replaceOnce(site, 'listen 80;', `listen 127.0.0.1:${addresses.httpPort};`)
  site = replaceOnce(site, '/etc/nginx/certs/fullchain.pem', addresses.certificate.certFile)
  site = replaceOnce(site, '/etc/nginx/certs/privkey.pem', addresses.certificate.keyFile)
  return site
}

export interface MainConfigOptions {
  /** The site config to include inside http {}. */
  siteFile: string
  /** The source address nginx connects to the instances from (`proxy_bind`): the address TRUST_PROXY names. */
  proxyBind?: string
}

/**
 * The main config around a site file, standing in for the nginx image's /etc/nginx/nginx.conf: every
 * path nginx writes lies under `prefix`, so it runs without root and beside any system nginx.
 */
export function mainConfig(prefix: string, options: MainConfigOptions): string {
  const inPrefix = (name: string) => path.join(prefix, name)
  return [
    // As root, workers would otherwise run as nobody and could not enter the private temp folder.
    process.getuid?.() === 0 ? 'user root;' : '',
    'worker_processes 1;',
    `pid ${inPrefix('nginx.pid')};`,
    `error_log ${inPrefix('error.log')} notice;`,
    'events { worker_connections 256; }',
    'http {',
    `  client_body_temp_path ${inPrefix('client_body')};`,
    `  proxy_temp_path ${inPrefix('proxy')};`,
    `  fastcgi_temp_path ${inPrefix('fastcgi')};`,
    `  uwsgi_temp_path ${inPrefix('uwsgi')};`,
    `  scgi_temp_path ${inPrefix('scgi')};`,
    `  log_format upstream '$remote_addr "$request" $status upstream=$upstream_addr';`,
    `  access_log ${inPrefix('access.log')} upstream;`,
    options.proxyBind ? `  proxy_bind ${options.proxyBind};` : '',
    `  include ${options.siteFile};`,
    '}',
    '',
  ]
    .filter((line) => line !== '')
    .join('\n')
}

/** `nginx -t` on a main config: the exit code and what nginx said. */
export async function checkNginxConfig(prefix: string, configFile: string): Promise<{ ok: boolean; output: string }> {
  try {
    const { stderr } = await run(nginxBinary(), [
      '-t',
      '-p',
      prefix,
      '-e',
      path.join(prefix, 'error.log'),
      '-c',
      configFile,
    ])
    return { ok: true, output: stderr }
  } catch (error) {
    const failure = error as { stderr?: string; message: string }
    return { ok: false, output: failure.stderr ?? failure.message }
  }
}

export interface RunningNginx {
  httpsUrl: string
  httpUrl: string
  prefix: string
  certificate: Certificate
  /** nginx's own access log: `client "request" status upstream=host:port`, one line per request. */
  accessLog(): string[]
  errorLog(): string
  /** Stops nginx (fast shutdown) and waits for it; safe to call twice. */
  stop(): Promise<void>
}

export interface StartNginxOptions {
  upstreams: string[]
  proxyBind?: string
}

/** Resolves once the port accepts connections; rejects when nginx ends first or after `timeoutMs`. */
async function waitForPort(port: number, ended: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (ended()) throw new Error('nginx exited before listening')
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (open) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`nginx did not listen on ${port} within ${timeoutMs} ms`)
}

/** The shipped site config in front of `upstreams`, on two free loopback ports, in a temp prefix. */
export async function startNginx(options: StartNginxOptions): Promise<RunningNginx> {
  const binary = nginxBinary()
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-nginx-'))
  const certificate = await makeCertificate(prefix).catch((error: unknown) => {
    fs.rmSync(prefix, { recursive: true, force: true })
    throw error
  })
  const [httpsPort, httpPort] = [await freePort(), await freePort()]
  const siteFile = path.join(prefix, 'gatehouse.conf')
  const configFile = path.join(prefix, 'nginx.conf')
  try {
    fs.writeFileSync(siteFile, siteConfigFor({ upstreams: options.upstreams, httpsPort, httpPort, certificate }))
    fs.writeFileSync(configFile, mainConfig(prefix, { siteFile, proxyBind: options.proxyBind }))
  } catch (error) {
    fs.rmSync(prefix, { recursive: true, force: true })
    throw error
  }

  const child = spawn(
    binary,
    ['-p', prefix, '-e', path.join(prefix, 'error.log'), '-c', configFile, '-g', 'daemon off;'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk
  })
  let ended = false
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    // A spawn that fails (say, nginx removed meanwhile) emits 'error' and never 'exit'.
    child.once('error', (error) => {
      stderr += `${error.message}\n`
      resolve()
    })
  }).then(() => {
    ended = true
  })
  const readLog = (name: string) => {
    try {
      return fs.readFileSync(path.join(prefix, name), 'utf8')
    } catch {
      return ''
    }
  }

  let stopped: Promise<void> | undefined
  const stop = () => {
    stopped ??= (async () => {
      if (!ended) {
        child.kill('SIGTERM')
        const killer = setTimeout(() => child.kill('SIGKILL'), 5000)
        await exited
        clearTimeout(killer)
      }
      fs.rmSync(prefix, { recursive: true, force: true })
    })()
    return stopped
  }

  try {
    await waitForPort(httpsPort, () => ended)
  } catch (error) {
    const why = `${(error as Error).message}\n${stderr}${readLog('error.log')}`
    await stop()
    throw new Error(why)
  }
  return {
    // The certificate names 127.0.0.1 too; "localhost" might resolve to ::1, where nginx does not listen.
    httpsUrl: `https://127.0.0.1:${httpsPort}`,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    prefix,
    certificate,
    accessLog: () => readLog('access.log').split('\n').filter(Boolean),
    errorLog: () => readLog('error.log'),
    stop,
  }
}

export interface TlsBrowserOptions {
  /** The only CA trusted: the test's own certificate, so an unverified connection fails. */
  ca?: string
  /** The client's source address (any 127.x.y.z works on Linux loopback): one "client" per address. */
  localAddress?: string
}

/**
 * The cookie-jar Browser over node:https (fetch cannot take a CA or a source address), with a browser's
 * rule for Secure cookies: a Secure cookie that arrives over plain HTTP is never stored.
 */
export class TlsBrowser extends Browser {
  /** Every Set-Cookie header received, in order: what the "browser" was offered. */
  readonly offeredCookies: string[] = []

  constructor(
    baseUrl: string,
    readonly options: TlsBrowserOptions = {},
  ) {
    super(baseUrl)
  }

  override async request(method: string, target: string, options: RequestOptions = {}): Promise<Page> {
    const url = new URL(target, this.baseUrl)
    const headers: Record<string, string> = { accept: 'text/html', ...options.headers }
    if (this.cookies.size > 0 && !('cookie' in headers)) {
      headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ')
    }
    const secure = url.protocol === 'https:'
    const { status, rawHeaders, body } = await new Promise<{ status: number; rawHeaders: string[]; body: string }>(
      (resolve, reject) => {
        const request = (secure ? https : http).request(
          url,
          {
            method,
            headers,
            // A fresh connection per request, like separate page loads; nginx picks an instance per request anyway.
            agent: false,
            ...(secure ? { ca: this.options.ca } : {}),
            // SNI carries names only, never an address (RFC 6066).
            ...(secure && isIP(url.hostname) === 0 ? { servername: url.hostname } : {}),
            ...(this.options.localAddress ? { localAddress: this.options.localAddress } : {}),
          },
          (response) => {
            const chunks: Buffer[] = []
            response.on('data', (chunk: Buffer) => chunks.push(chunk))
            response.on('end', () =>
              resolve({
                status: response.statusCode ?? 0,
                rawHeaders: response.rawHeaders,
                body: Buffer.concat(chunks).toString('utf8'),
              }),
            )
            response.on('error', reject)
          },
        )
        request.on('error', reject)
        request.end(options.body)
      },
    )
    const responseHeaders = new Headers()
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      responseHeaders.append(rawHeaders[i] ?? '', rawHeaders[i + 1] ?? '')
    }
    const page = new Page(status, responseHeaders, body)
    for (const header of page.setCookies) {
      this.offeredCookies.push(header)
      const isSecureCookie = header
        .split(';')
        .slice(1)
        .some((attribute) => attribute.trim().toLowerCase() === 'secure')
      if (isSecureCookie && !secure) continue
      this.storeCookie(header)
    }
    const token = /name="_csrf" value="([^"]*)"/.exec(page.html)?.[1]
    if (token) this.lastCsrfToken = token
    return page
  }
}
