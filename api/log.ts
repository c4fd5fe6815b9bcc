/**
 * The node's structured log: one JSON object per line (pino), `{"level":"info","time":"<RFC 3339>","msg":...}` plus
 * the fields of the event, and `req_id` on every line written while an API request is handled (see `logContext`).
 * No secret reaches a line: fields named like a secret (secret_key, access_key, password, token, authorization, ...)
 * are censored up to three levels deep, and bearer tokens or JWTs inside any logged string are cut out.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger } from 'pino';

/** Log levels Ferry uses, least severe first. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What replaces a secret in a log line. */
export const REDACTED = '[Redacted]';

/**
 * Field names whose values are never logged, wherever they sit (top level or nested up to three levels). Header
 * names are lower case, as Node and Hono give them.
 */
export const SECRET_FIELDS = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-vault-token',
  'x-amz-security-token',
  'secret_key',
  'secretKey',
  'secret_access_key',
  'secretAccessKey',
  'access_key',
  'accessKey',
  'access_key_id',
  'accessKeyId',
  'account_key',
  'accountKey',
  'session_token',
  'sessionToken',
  'password',
  'passphrase',
  'secret',
  'secret_id',
  'client_secret',
  'private_key',
  'api_key',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'bearer',
  'connection_string',
  'connectionString',
] as const;

function pathOf(prefix: string, field: string): string {
  const key = /^[A-Za-z_$][\w$]*$/.test(field) ? field : `["${field}"]`;
  if (prefix === '') return key;
  return key.startsWith('[') ? `${prefix}${key}` : `${prefix}.${key}`;
}

/** The pino redaction paths: every secret field at depth 0 to 3 (`f`, `*.f`, `*.*.f`, `*.*.*.f`). */
export function redactPaths(): string[] {
  const prefixes = ['', '*', '*.*', '*.*.*'];
  return prefixes.flatMap((prefix) => SECRET_FIELDS.map((field) => pathOf(prefix, field)));
}

const BEARER = /\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]+/gi;
const JWT = /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;

/** Cuts credentials that a free-text string may carry (`Bearer <token>`, a JWT) out of it. */
export function scrubText(text: string): string {
  return text.replace(BEARER, `$1 ${REDACTED}`).replace(JWT, REDACTED);
}

function scrubArg(arg: unknown): unknown {
  if (typeof arg === 'string') return scrubText(arg);
  if (typeof arg !== 'object' || arg === null || Array.isArray(arg) || arg instanceof Error) return arg;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(arg)) out[key] = typeof value === 'string' ? scrubText(value) : value;
  return out;
}

/** Request-scoped fields added to every line logged inside `logContext.run(...)` (the API's request id). */
export interface LogContext {
  /** The request id: the caller's `x-request-id`, or one the node made up. */
  req_id: string;
}

/** Carries the current request's LogContext through its async calls. */
export const logContext = new AsyncLocalStorage<LogContext>();

export interface LoggerSettings {
  /** Least severe level written. Default env FERRY_LOG_LEVEL, else `info`. */
  level?: LogLevel;
  /** Where lines go. Default: stdout, written synchronously (no line is lost when the process exits). */
  destination?: DestinationStream;
  /** Fields on every line. Default: `{ pid }`. */
  base?: Record<string, unknown>;
}

function levelFromEnv(): LogLevel {
  const value = process.env.FERRY_LOG_LEVEL;
  return LOG_LEVELS.find((level) => level === value) ?? 'info';
}

/** A pino logger with Ferry's line shape, redaction and request ids. */
export function createLogger(settings: LoggerSettings = {}): Logger {
  const options: LoggerOptions = {
    level: settings.level ?? levelFromEnv(),
    base: settings.base ?? { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: redactPaths(), censor: REDACTED },
    mixin: () => logContext.getStore() ?? {},
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map(scrubArg) as Parameters<typeof method>);
      },
    },
  };
  return pino(options, settings.destination ?? pino.destination({ dest: 1, sync: true }));
}
