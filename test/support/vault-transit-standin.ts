/**
 * A STAND-IN for HashiCorp Vault, not Vault: no Vault server can be installed here, so this small HTTP server on
 * 127.0.0.1 answers the part of Vault's public HTTP API that the Transit key provider uses, written from the API docs
 * (developer.hashicorp.com/vault/api-docs: index "Error response" and "HTTP status codes", secret/transit,
 * auth/approle "Login with AppRole", auth/token "Lookup a token (self)" and "Renew a token (self)", "Namespaces").
 *
 * What it does as the docs say: `X-Vault-Token` on every authenticated call (403 otherwise); AppRole login issuing
 * tokens with a TTL; lookup-self and renew-self; the `X-Vault-Namespace` header (keys and tokens live in one
 * namespace); Transit keys with versions, `derived` keys requiring a base64 `context` (HKDF-SHA256 of the version key
 * with the context as info), `vault:vN:` ciphertexts with AES-256-GCM inside (nonce | ciphertext | tag), encrypt
 * upserting a missing key only for a token allowed to create it, rotate, config (min_decryption_version,
 * deletion_allowed), trim, delete; errors as `{"errors":[...]}` with 400/403/404/405.
 *
 * Simplified: one Transit mount; key type aes256-gcm96 only; a "policy" is a list of Transit key names (or name* prefixes) a
 * token may use (undefined: root, which may also create, configure, rotate, trim and delete keys); a token works only in the
 * namespace it was issued in; renew-self restores the token's full TTL; no batch_input, convergent encryption,
 * key_version, wrapping, audit or sealing.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a token may do and for how long. */
export interface StandinTokenSpec {
  /** Lifetime in seconds; 0 never expires. */
  ttl: number;
  renewable?: boolean;
  /** Namespace the token belongs to ('' for root). */
  namespace?: string;
  /** Transit key names the token may use, a trailing '*' matching any suffix (as in a Vault policy path); undefined
   * for a root token. */
  keys?: string[];
}

/** An AppRole whose login issues tokens of `token`. */
export interface StandinAppRole {
  roleId: string;
  secretId: string;
  token: StandinTokenSpec;
}

/** One request the stand-in saw. */
export interface StandinRequest {
  method: string;
  /** Path after `/v1/`. */
  path: string;
  /** The `X-Vault-Namespace` header, '' when absent. */
  namespace: string;
}

/** A running stand-in. */
export interface VaultTransitStandin {
  /** e.g. `http://127.0.0.1:41234` */
  endpoint: string;
  /** A root token of the root namespace. */
  rootToken: string;
  /** Every request so far, oldest first. */
  requests: StandinRequest[];
  issueToken(spec: StandinTokenSpec): string;
  addAppRole(role: StandinAppRole): void;
  /** While on, requests are accepted but never answered (a hung server). */
  stall(on: boolean): void;
  close(): Promise<void>;
}

interface Token {
  spec: StandinTokenSpec;
  namespace: string;
  /** ms since epoch; undefined never expires */
  expiresAt: number | undefined;
}

interface TransitKey {
  derived: boolean;
  versions: Map<number, { key: Buffer; created: number }>;
  latest: number;
  minDecryption: number;
  minEncryption: number;
  minAvailable: number;
  deletionAllowed: boolean;
}

class VaultError extends Error {
  constructor(
    readonly status: number,
    readonly errors: string[],
  ) {
    super(errors.join('; '));
  }
}

const denied = (): VaultError => new VaultError(403, ['permission denied']);
const invalid = (message: string): VaultError => new VaultError(400, [message]);

type Body = Record<string, unknown>;

/** Starts a stand-in on a free loopback port. `now` (ms) drives token expiry; default Date.now. */
export async function startVaultTransitStandin(options: { now?: () => number } = {}): Promise<VaultTransitStandin> {
  const now = options.now ?? Date.now;
  const tokens = new Map<string, Token>();
  const appRoles = new Map<string, StandinAppRole>();
  const keys = new Map<string, TransitKey>(); // `${namespace}\0${name}`
  const requests: StandinRequest[] = [];
  let stalled = false;

  function issueToken(spec: StandinTokenSpec): string {
    const id = `hvs.${randomBytes(18).toString('base64url')}`;
    const expiresAt = spec.ttl > 0 ? now() + spec.ttl * 1000 : undefined;
    tokens.set(id, { spec, namespace: spec.namespace ?? '', expiresAt });
    return id;
  }

  function tokenAuth(id: string, token: Token): Body {
    const ttl = token.expiresAt === undefined ? 0 : Math.max(0, Math.round((token.expiresAt - now()) / 1000));
    const policies = token.spec.keys === undefined ? ['root'] : ['default', 'ferry'];
    return { client_token: id, policies, lease_duration: ttl, renewable: token.spec.renewable ?? false };
  }

  function authenticate(req: IncomingMessage, namespace: string): Token {
    const id = req.headers['x-vault-token'];
    const token = typeof id === 'string' ? tokens.get(id) : undefined;
    if (token === undefined || token.namespace !== namespace) throw denied();
    if (token.expiresAt !== undefined && token.expiresAt <= now()) {
      tokens.delete(id as string);
      throw denied();
    }
    return token;
  }

  function mayUse(token: Token, name: string): void {
    const allowed = (p: string): boolean => (p.endsWith('*') ? name.startsWith(p.slice(0, -1)) : p === name);
    if (token.spec.keys !== undefined && !token.spec.keys.some(allowed)) throw denied();
  }

  function mustBeRoot(token: Token): void {
    if (token.spec.keys !== undefined) throw denied();
  }

  function newKey(derived: boolean): TransitKey {
    const versions = new Map([[1, { key: randomBytes(32), created: Math.floor(now() / 1000) }]]);
    return {
      derived,
      versions,
      latest: 1,
      minDecryption: 1,
      minEncryption: 0,
      minAvailable: 0,
      deletionAllowed: false,
    };
  }

  function keyData(name: string, key: TransitKey): Body {
    const versions = Object.fromEntries([...key.versions].map(([v, e]) => [String(v), e.created]));
    return {
      name,
      type: 'aes256-gcm96',
      derived: key.derived,
      deletion_allowed: key.deletionAllowed,
      exportable: false,
      allow_plaintext_backup: false,
      keys: versions,
      latest_version: key.latest,
      min_available_version: key.minAvailable,
      min_decryption_version: key.minDecryption,
      min_encryption_version: key.minEncryption,
      supports_encryption: true,
      supports_decryption: true,
      supports_derivation: true,
      supports_signing: false,
    };
  }

  function encryptionKey(key: TransitKey, version: number, context: unknown): Buffer {
    const entry = key.versions.get(version);
    if (entry === undefined) throw invalid('invalid key version');
    if (!key.derived) return entry.key;
    if (typeof context !== 'string' || context.length === 0) {
      throw invalid(
        "missing 'context' for key derivation; the key was created using a derived key, which means additional, " +
          'per-request information must be included in order to perform operations with the key',
      );
    }
    return Buffer.from(hkdfSync('sha256', entry.key, Buffer.alloc(0), Buffer.from(context, 'base64'), 32));
  }

  function seal(key: TransitKey, plaintext: Buffer, context: unknown): string {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', encryptionKey(key, key.latest, context), nonce);
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return `vault:v${key.latest}:${Buffer.concat([nonce, ct]).toString('base64')}`;
  }

  function open(key: TransitKey, ciphertext: unknown, context: unknown): Buffer {
    if (typeof ciphertext !== 'string' || !ciphertext.startsWith('vault:'))
      throw invalid('invalid ciphertext: no prefix');
    const fields = ciphertext.split(':');
    if (fields.length !== 3) throw invalid('invalid ciphertext: wrong number of fields');
    const version = /^v([0-9]+)$/.exec(fields[1] ?? '');
    if (version === null) throw invalid('invalid ciphertext: version number could not be decoded');
    const v = Number(version[1]);
    if (v > key.latest) throw invalid('invalid key version');
    if (v < key.minDecryption) throw invalid('ciphertext or signature version is disallowed by policy (too old)');
    const raw = Buffer.from(fields[2] ?? '', 'base64');
    if (raw.length < 12 + 16) throw invalid('invalid ciphertext: could not decode');
    const decipher = createDecipheriv('aes-256-gcm', encryptionKey(key, v, context), raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    try {
      return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
    } catch {
      throw invalid('cipher: message authentication failed');
    }
  }

  function plaintextOf(body: Body): Buffer {
    if (typeof body.plaintext !== 'string') throw invalid('missing plaintext to encrypt');
    return Buffer.from(body.plaintext, 'base64');
  }

  /** Transit paths after the mount. */
  function transit(method: string, parts: string[], token: Token, namespace: string, body: Body): Body | undefined {
    const [op, a, b, c] = parts;
    const keyId = (name: string): string => `${namespace}\0${name}`;
    const existing = (name: string | undefined): TransitKey => {
      const key = name === undefined ? undefined : keys.get(keyId(name));
      if (key === undefined) throw invalid('encryption key not found');
      return key;
    };
    if (op === 'keys' && a !== undefined && b === undefined) {
      mayUse(token, a);
      const key = keys.get(keyId(a));
      if (method === 'GET') {
        if (key === undefined) throw new VaultError(404, []);
        return keyData(a, key);
      }
      mustBeRoot(token);
      if (method === 'POST') {
        if (key === undefined) keys.set(keyId(a), newKey(body.derived === true));
        return undefined;
      }
      if (method === 'DELETE') {
        if (key === undefined) return undefined;
        if (!key.deletionAllowed) throw invalid('deletion is not allowed for this key');
        keys.delete(keyId(a));
        return undefined;
      }
      throw new VaultError(405, ['unsupported operation']);
    }
    if (method !== 'POST') throw new VaultError(405, ['unsupported operation']);
    if (op === 'keys' && a !== undefined && c === undefined) {
      mustBeRoot(token);
      const key = existing(a);
      if (b === 'rotate') {
        key.latest += 1;
        key.versions.set(key.latest, { key: randomBytes(32), created: Math.floor(now() / 1000) });
        return keyData(a, key);
      }
      if (b === 'config') {
        if (typeof body.min_decryption_version === 'number') key.minDecryption = body.min_decryption_version;
        if (typeof body.min_encryption_version === 'number') key.minEncryption = body.min_encryption_version;
        if (typeof body.deletion_allowed === 'boolean') key.deletionAllowed = body.deletion_allowed;
        return keyData(a, key);
      }
      if (b === 'trim') {
        const min = Number(body.min_available_version);
        if (!(min <= key.minDecryption)) {
          throw invalid('cannot set min_available_version to a value greater than min_decryption_version');
        }
        for (const v of key.versions.keys()) if (v < min) key.versions.delete(v);
        key.minAvailable = min;
        return keyData(a, key);
      }
    }
    if (op === 'encrypt' && a !== undefined && b === undefined) {
      mayUse(token, a);
      let key = keys.get(keyId(a));
      if (key === undefined) {
        mustBeRoot(token); // the "create" capability: upsert, derived when a context was given
        key = newKey(typeof body.context === 'string' && body.context.length > 0);
        keys.set(keyId(a), key);
      }
      return { ciphertext: seal(key, plaintextOf(body), body.context), key_version: key.latest };
    }
    if (op === 'decrypt' && a !== undefined && b === undefined) {
      mayUse(token, a);
      return { plaintext: open(existing(a), body.ciphertext, body.context).toString('base64') };
    }
    if (op === 'rewrap' && a !== undefined && b === undefined) {
      mayUse(token, a);
      const key = existing(a);
      const plaintext = open(key, body.ciphertext, body.context);
      return { ciphertext: seal(key, plaintext, body.context), key_version: key.latest };
    }
    if (op === 'datakey' && (a === 'plaintext' || a === 'wrapped') && b !== undefined && c === undefined) {
      mayUse(token, b);
      const key = existing(b);
      const bits = body.bits === undefined ? 256 : Number(body.bits);
      if (![128, 256, 512].includes(bits)) throw invalid(`invalid bit length`);
      const secret = randomBytes(bits / 8);
      const ciphertext = seal(key, secret, body.context);
      return a === 'plaintext' ? { plaintext: secret.toString('base64'), ciphertext } : { ciphertext };
    }
    throw new VaultError(404, ['unsupported path']);
  }

  function route(method: string, path: string, req: IncomingMessage, namespace: string, body: Body): Body {
    const envelope = (data: Body | undefined, auth: Body | null = null): Body => ({
      request_id: randomUUID(),
      lease_id: '',
      renewable: false,
      lease_duration: 0,
      data: data ?? null,
      wrap_info: null,
      warnings: null,
      auth,
    });
    if (path === 'auth/approle/login' && method === 'POST') {
      const role = appRoles.get(`${namespace}\0${String(body.role_id)}`);
      if (role === undefined || role.secretId !== body.secret_id) throw invalid('invalid role or secret ID');
      const id = issueToken({ ...role.token, namespace });
      return envelope(undefined, tokenAuth(id, tokens.get(id) as Token));
    }
    const token = authenticate(req, namespace);
    const id = req.headers['x-vault-token'] as string;
    if (path === 'auth/token/lookup-self' && method === 'GET') {
      const auth = tokenAuth(id, token);
      return envelope({ id, ttl: auth.lease_duration, renewable: auth.renewable, policies: auth.policies });
    }
    if (path === 'auth/token/renew-self' && method === 'POST') {
      if (token.spec.renewable !== true || token.expiresAt === undefined) throw invalid('lease is not renewable');
      token.expiresAt = now() + token.spec.ttl * 1000;
      return envelope(undefined, tokenAuth(id, token));
    }
    const [mount, ...rest] = path.split('/');
    if (mount !== 'transit') throw new VaultError(404, ['no handler for route']);
    return envelope(transit(method, rest, token, namespace, body));
  }

  async function readBody(req: IncomingMessage): Promise<Body> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.length === 0) return {};
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as Body;
    } catch {
      // answered below
    }
    throw invalid('failed to parse JSON input');
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0]?.replace(/^\/v1\//, '') ?? '';
    const header = req.headers['x-vault-namespace'];
    const namespace = typeof header === 'string' ? header.replace(/^\/+|\/+$/g, '') : '';
    requests.push({ method, path, namespace });
    if (stalled) return;
    let status = 200;
    let payload: Body | undefined;
    try {
      payload = route(method, path, req, namespace, await readBody(req));
      if (payload.data === null && payload.auth === null) status = 204;
    } catch (err: unknown) {
      const e = err instanceof VaultError ? err : new VaultError(500, [String(err)]);
      status = e.status;
      payload = { errors: e.errors };
    }
    res.writeHead(status, status === 204 ? {} : { 'content-type': 'application/json' });
    res.end(status === 204 ? undefined : JSON.stringify(payload));
  }

  const server: Server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    rootToken: issueToken({ ttl: 0 }),
    requests,
    issueToken,
    addAppRole: (role) => void appRoles.set(`${role.token.namespace ?? ''}\0${role.roleId}`, role),
    stall: (on) => {
      stalled = on;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
