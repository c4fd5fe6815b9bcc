/** Token verification: HS256 secrets (with rotation), RS256 from a PEM key and from a JWKS served on loopback. */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FerryError } from '../../common/index.js';
import { mintToken } from './mint.js';
import { maxTokenTtlSeconds, parseTtl } from './token-lifetime.js';
import { createTokenVerifier } from './verifier.js';

const SECRET = randomBytes(32);
const OLD_SECRET = randomBytes(32);

async function rejection(promise: Promise<unknown>): Promise<FerryError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FerryError);
  return err as FerryError;
}

describe('HS256', () => {
  it('accepts a minted token and returns its claims as the principal', async () => {
    const verifier = await createTokenVerifier({ sharedSecrets: [SECRET] });
    const token = await mintToken(SECRET, {
      sub: 'alice',
      name: 'Alice',
      email: 'alice@example.com',
      roles: ['system.user'],
      groups: ['team-a'],
    });
    expect(await verifier.verify(token)).toEqual({
      sub: 'alice',
      name: 'Alice',
      email: 'alice@example.com',
      roles: ['system.user'],
      groups: ['team-a'],
    });
  });

  it('accepts any of several secrets (rotation), and refuses another secret without quoting the token', async () => {
    const verifier = await createTokenVerifier({ sharedSecrets: [SECRET, OLD_SECRET] });
    expect((await verifier.verify(await mintToken(OLD_SECRET, { sub: 'bob', roles: [] }))).sub).toBe('bob');
    const forged = await mintToken(randomBytes(32), { sub: 'bob', roles: ['system.admin'] });
    const err = await rejection(verifier.verify(forged));
    expect(err.code).toBe('UNAUTHENTICATED');
    expect(err.message).toBe('invalid token: its signature does not verify with any trusted key');
    expect(err.message).not.toContain(forged);
  });

  it('refuses missing, malformed, expired, wrong-issuer and unsigned tokens', async () => {
    const verifier = await createTokenVerifier({ sharedSecrets: [SECRET] });
    expect((await rejection(verifier.verify(undefined))).message).toMatch(/^missing bearer token/);
    expect((await rejection(verifier.verify('not.a.jwt'))).message).toBe('invalid token: it is not a JWT');
    const expired = await mintToken(SECRET, { sub: 'a', roles: [] }, { ttlSeconds: -120 });
    expect((await rejection(verifier.verify(expired))).message).toBe('invalid token: it has expired; get a new one');
    const elsewhere = await mintToken(SECRET, { sub: 'a', roles: [] }, { issuer: 'someone-else' });
    expect((await rejection(verifier.verify(elsewhere))).message).toMatch(/"iss" claim is not accepted/);
    const noExp = await new SignJWT({ sub: 'a' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('ferry').sign(SECRET);
    expect((await rejection(verifier.verify(noExp))).message).toMatch(/"exp" claim/);
    const header = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
    const payload = Buffer.from(JSON.stringify({ sub: 'a', exp: 9e9, iss: 'ferry' })).toString('base64url');
    expect((await rejection(verifier.verify(`${header}.${payload}.`))).message).toBe(
      'invalid token: this node does not accept none tokens',
    );
  });

  it('refuses claims of the wrong type, naming the claim', async () => {
    const verifier = await createTokenVerifier({ sharedSecrets: [SECRET] });
    const token = await new SignJWT({ roles: 'system.admin' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('a')
      .setIssuer('ferry')
      .setExpirationTime('1h')
      .sign(SECRET);
    expect((await rejection(verifier.verify(token))).message).toBe(
      'invalid token: the "roles" claim is missing or malformed',
    );
  });

  it('refuses a short secret and a verifier with no method', async () => {
    expect((await rejection(createTokenVerifier({ sharedSecrets: [randomBytes(16)] }))).code).toBe('INVALID_ARGUMENT');
    expect((await rejection(createTokenVerifier({}))).code).toBe('INVALID_ARGUMENT');
  });
});

describe('RS256', () => {
  let keys: Awaited<ReturnType<typeof generateKeyPair>>;
  let server: Server;
  let jwksUrl: string;
  let jwksHits = 0;

  const sign = (claims: Record<string, unknown>, options: { kid?: string; iss?: string; aud?: string } = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', ...(options.kid !== undefined && { kid: options.kid }) })
      .setSubject('carol')
      .setIssuer(options.iss ?? 'https://idp.example')
      .setAudience(options.aud ?? 'ferry')
      .setExpirationTime('10m')
      .sign(keys.privateKey);

  beforeAll(async () => {
    keys = await generateKeyPair('RS256', { extractable: true });
    const jwk = { ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    server = createServer((_req, res) => {
      jwksHits++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('verifies with a PEM public key, checking issuer and audience', async () => {
    const verifier = await createTokenVerifier({
      publicKeyPem: await exportSPKI(keys.publicKey),
      issuer: 'https://idp.example',
      audience: 'ferry',
    });
    const principal = await verifier.verify(await sign({ roles: ['system.view'], groups: ['ops'] }));
    expect(principal).toEqual({ sub: 'carol', roles: ['system.view'], groups: ['ops'] });
    expect((await rejection(verifier.verify(await sign({}, { aud: 'other' })))).message).toMatch(/"aud" claim/);
    expect((await rejection(verifier.verify(await sign({}, { iss: 'https://evil' })))).message).toMatch(/"iss" claim/);
    // An HS256 token is not accepted when only RS256 is configured (no algorithm confusion).
    const hs = await mintToken(SECRET, { sub: 'x', roles: ['system.admin'] });
    expect((await rejection(verifier.verify(hs))).message).toBe(
      'invalid token: this node does not accept HS256 tokens',
    );
  });

  it('verifies with keys fetched from a JWKS URL', async () => {
    const verifier = await createTokenVerifier({ jwksUrl, issuer: 'https://idp.example' });
    expect((await verifier.verify(await sign({ roles: ['system.user'] }, { kid: 'k1' }))).roles).toEqual([
      'system.user',
    ]);
    expect(jwksHits).toBeGreaterThan(0);
    const other = await generateKeyPair('RS256');
    const foreign = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setSubject('m')
      .setIssuer('https://idp.example')
      .setExpirationTime('10m')
      .sign(other.privateKey);
    expect((await rejection(verifier.verify(foreign))).code).toBe('UNAUTHENTICATED');
  });

  it('answers UNAVAILABLE when the JWKS cannot be fetched', async () => {
    const verifier = await createTokenVerifier({ jwksUrl: 'http://127.0.0.1:1/jwks.json' });
    expect((await rejection(verifier.verify(await sign({}, { kid: 'k1' })))).code).toBe('UNAVAILABLE');
  });

  it('refuses a PEM that is not a public key', async () => {
    expect((await rejection(createTokenVerifier({ publicKeyPem: 'nonsense' }))).code).toBe('INVALID_ARGUMENT');
  });
});

describe('parseTtl', () => {
  it('reads seconds, minutes, hours and days, and refuses the rest', () => {
    expect([parseTtl('90'), parseTtl('90s'), parseTtl('15m'), parseTtl('1h'), parseTtl('7d')]).toEqual([
      90, 90, 900, 3600, 604800,
    ]);
    for (const bad of ['', '0', '-1h', '1w', '1.5h', '400d']) expect(() => parseTtl(bad)).toThrow(/ttl/);
  });
});

describe('token lifetime', () => {
  const now = (): number => Math.floor(Date.now() / 1000);
  const signed = (claims: { iat?: number; exp: number }, alg: 'HS256' = 'HS256'): Promise<string> => {
    const jwt = new SignJWT({ roles: ['system.admin'] })
      .setProtectedHeader({ alg })
      .setSubject('mallory')
      .setIssuer('ferry')
      .setExpirationTime(claims.exp);
    if (claims.iat !== undefined) jwt.setIssuedAt(claims.iat);
    return jwt.sign(SECRET);
  };

  it('refuses a 100-year token by default (24h), with or without iat, and says what to do', async () => {
    const verifier = await createTokenVerifier({ sharedSecrets: [SECRET] });
    const century = 100 * 366 * 86400;
    const withIat = await rejection(verifier.verify(await signed({ iat: now(), exp: now() + century })));
    expect(withIat.code).toBe('UNAUTHENTICATED');
    expect(withIat.message).toMatch(/issued to live 36600d; this node accepts tokens that live at most 24h/);
    expect(withIat.message).toContain('ferry auth token --ttl');
    const noIat = await rejection(verifier.verify(await signed({ exp: now() + century })));
    expect(noIat.message).toMatch(/expires more than 24h from now/);
    // iat moved into the future to make exp - iat look short: what is left of it still counts.
    const future = await rejection(verifier.verify(await signed({ iat: now() + century, exp: now() + century + 60 })));
    expect(future.code).toBe('UNAUTHENTICATED');
  });

  it('accepts tokens up to the maximum, and a maximum the operator sets', async () => {
    const verifier = await createTokenVerifier({ sharedSecrets: [SECRET] });
    expect((await verifier.verify(await signed({ iat: now(), exp: now() + 86400 }))).sub).toBe('mallory');
    expect(
      (await verifier.verify(await mintToken(SECRET, { sub: 'a', roles: [] }, { ttlSeconds: 8 * 3600 }))).sub,
    ).toBe('a');
    const weekly = await createTokenVerifier({ sharedSecrets: [SECRET], maxLifetimeSeconds: 7 * 86400 });
    expect((await weekly.verify(await signed({ iat: now(), exp: now() + 7 * 86400 }))).sub).toBe('mallory');
    const hourly = await createTokenVerifier({ sharedSecrets: [SECRET], maxLifetimeSeconds: 3600 });
    const refused = await rejection(hourly.verify(await signed({ iat: now(), exp: now() + 2 * 3600 })));
    expect(refused.message).toMatch(/at most 1h/);
  });

  it('reads the maximum from the flag, then FERRY_AUTH_MAX_TOKEN_TTL, else 24h; refuses a bad setting by name', () => {
    expect(maxTokenTtlSeconds(undefined, {})).toBe(86400);
    expect(maxTokenTtlSeconds(undefined, { FERRY_AUTH_MAX_TOKEN_TTL: '30d' })).toBe(30 * 86400);
    expect(maxTokenTtlSeconds('8h', { FERRY_AUTH_MAX_TOKEN_TTL: '30d' })).toBe(8 * 3600);
    expect(() => maxTokenTtlSeconds(undefined, { FERRY_AUTH_MAX_TOKEN_TTL: '100y' })).toThrow(
      /FERRY_AUTH_MAX_TOKEN_TTL: "100y" is not a lifetime/,
    );
    expect(() => maxTokenTtlSeconds('400d', {})).toThrow(/--auth-max-token-ttl/);
  });
});
