/**
 * The node's structured log: one JSON object per line (pino), `{"level":"info","time":"<RFC 3339>","msg":...}` plus
 * the fields of the event, and `req_id` on every line written while an API request is handled (see `logContext`).
 * No secret reaches a line: fields named like a secret (secret_key, access_key, password, token, authorization, ...)
 * are censored at any depth, and bearer tokens or JWTs inside any logged string are cut out. This is a walk of the
 * line's fields (pino's `formatters.log`), not pino's path-based `redact`: wildcard paths for every depth cost about
 * 250 us a line there, the walk a few.
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
 * Field names whose values are never logged, at any depth. Matched without regard to case, `_` or `-`
 * (`secret_key`, `secretKey` and `Secret-Key` are one name). Header names are included as Node gives them.
 */
export const SECRET_FIELDS = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-vault-token',
  'x-amz-security-token',
  'secret_key',
  'secret_access_key',
  'access_key',
  'access_key_id',
  'account_key',
  'session_token',
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
  'admin_secret',
] as const;

const normalise = (name: string): string => name.toLowerCase().replace(/[-_]/g, '');
const SECRET_NAMES: ReadonlySet<string> = new Set(SECRET_FIELDS.map(normalise));

/** Whether a field of this name is censored. */
export function isSecretField(name: string): boolean {
  return SECRET_NAMES.has(normalise(name));
}

const BEARER = /\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]+/gi;
const JWT = /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;

/** Cuts credentials that a free-text string may carry (`Bearer <token>`, a JWT) out of it. */
export function scrubText(text: string): string {
  return text.replace(BEARER, `$1 ${REDACTED}`).replace(JWT, REDACTED);
}

/** Deepest level of nested fields looked into; deeper values are replaced (log fields are small). */
const MAX_DEPTH = 8;

/**
 * A copy of `value` fit for a log line: secret-named fields censored at any depth, credentials cut out of strings.
 * Errors are kept as they are (pino serialises them); values nested deeper than MAX_DEPTH are replaced.
 */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrubText(value);
  if (typeof value !== 'object' || value === null || value instanceof Error) return value;
  if (depth >= MAX_DEPTH) return '[Too deep]';
  if (Array.isArray(value)) return value.map((item: unknown) => redact(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    out[key] = isSecretField(key) ? REDACTED : redact(field, depth + 1);
  }
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
    formatters: {
      level: (label) => ({ level: label }),
      log: (fields) => redact(fields) as Record<string, unknown>,
    },
    mixin: () => logContext.getStore() ?? {},
    hooks: {
      // The message itself (a string argument) is not seen by formatters.log.
      logMethod(args, method) {
        const scrubbed = args.map((arg: unknown) => (typeof arg === 'string' ? scrubText(arg) : arg));
        method.apply(this, scrubbed as Parameters<typeof method>);
      },
    },
  };
  return pino(options, settings.destination ?? pino.destination({ dest: 1, sync: true }));
}
