/**
 * Cluster pairs: the token a destination issues, the pair a source makes with it, and the link each side then uses
 * (a PeerClient per pair). The keys every TLS-PSK handshake needs are kept in memory (the handshake asks for them
 * synchronously), loaded from the store and the vault and reloaded when the pair records change on any node.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { FerryError, isFerryError } from '../../common/index.js';
import type { ClusterRecord, ClusterStore, Watch } from '../../node/index.js';
import { PeerClient } from './channel.js';
import {
  formatToken,
  newToken,
  PAIR_TOKENS_PREFIX,
  PAIRS_PREFIX,
  type PairRecord,
  pairIdentity,
  pairKey,
  pairSecret,
  parseToken,
  type TokenRecord,
  tokenIdentity,
  tokenKey,
  tokenSecret,
  validatePairName,
  validateRemoteUrl,
} from './records.js';
import type { SecretVault } from './secret-vault.js';

/** Default life of a pair token. */
export const DEFAULT_TOKEN_TTL_SECONDS = 3600;

/** How long a status check waits for the other cluster. */
const PING_TIMEOUT_MS = 3000;

export interface PairServiceOptions {
  store: ClusterStore;
  vault: SecretVault;
  /** This cluster's record (id and name). */
  cluster: () => Promise<ClusterRecord>;
  /** The URL at which the other cluster reaches this one's API (told to it when this side creates a pair). */
  localUrl: () => string;
  /** Where a failed reload of the keys is reported. Default: nowhere. */
  warn?: (message: string, fields: Record<string, unknown>) => void;
}

/** What the other side answers when a pair is made. */
export interface AcceptAnswer {
  key: string;
  cluster_id: string;
  cluster_name: string;
}

/** What a source sends when it makes a pair. */
export interface AcceptRequest {
  pair_id: string;
  cluster_id: string;
  cluster_name: string;
  endpoint: string;
}

/** A pair's state as seen now. */
export interface PairStatus {
  /** Ready: both directions work; Degraded: this cluster reaches the other, not the other way; Error: no link. */
  status: 'Ready' | 'Degraded' | 'Error';
  reason?: string;
  /** Round trip of a status call, milliseconds. */
  rtt_ms?: number;
  /** Bytes per second the link carried during the last transfer, when there was one. */
  bandwidth_bytes_per_second?: number;
}

export class PairService {
  private keys = new Map<string, Buffer>();
  private readonly clients = new Map<string, PeerClient>();
  private readonly rates = new Map<string, number>();
  private watches: Watch[] = [];
  private closed = false;

  private constructor(private readonly options: PairServiceOptions) {}

  /** Loads the keys and follows changes made on other nodes. */
  static async open(options: PairServiceOptions): Promise<PairService> {
    const service = new PairService(options);
    await service.reload();
    for (const prefix of [PAIRS_PREFIX, PAIR_TOKENS_PREFIX]) {
      const watch = await options.store.watch(prefix);
      service.watches.push(watch);
      void service.follow(watch);
    }
    return service;
  }

  private async follow(watch: Watch): Promise<void> {
    try {
      for await (const _event of watch) await this.reloadQuietly();
    } catch (err: unknown) {
      if (!this.closed) this.options.warn?.('the watch of cluster pairs ended', { error: String(err) });
    }
  }

  private async reloadQuietly(): Promise<void> {
    try {
      await this.reload();
    } catch (err: unknown) {
      this.options.warn?.('reloading the keys of cluster pairs failed', { error: String(err) });
    }
  }

  /** Reads every pair's key and every live token's secret into memory. */
  async reload(): Promise<void> {
    const next = new Map<string, Buffer>();
    for (const pair of await this.pairs()) {
      const key = await this.options.vault.get(pairSecret(pair.id));
      if (key !== undefined) next.set(pairIdentity(pair.id), key);
    }
    const now = Date.now();
    for (const { value } of await this.options.store.list<TokenRecord>(PAIR_TOKENS_PREFIX)) {
      if (Date.parse(value.expires) <= now) continue;
      const secret = await this.options.vault.get(tokenSecret(value.id));
      if (secret !== undefined) next.set(tokenIdentity(value.id), secret);
    }
    this.keys = next;
  }

  /** The TLS-PSK key of `identity` (a pair's or a live token's), for the API port's handshake. */
  keyOf(identity: string): Buffer | undefined {
    return this.keys.get(identity);
  }

  /** Every pair of this cluster, by name. */
  async pairs(): Promise<PairRecord[]> {
    const entries = await this.options.store.list<PairRecord>(PAIRS_PREFIX);
    return entries.map((e) => e.value).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** A pair by name or id; NOT_FOUND naming the pairs there are. */
  async pair(ref: string): Promise<PairRecord> {
    const all = await this.pairs();
    const found = all.find((p) => p.name === ref) ?? all.find((p) => p.id === ref);
    if (found === undefined) {
      const names = all.map((p) => p.name);
      throw new FerryError(
        'NOT_FOUND',
        `no cluster pair "${ref}"${names.length > 0 ? ` (pairs: ${names.join(', ')})` : '; create one with ferry cluster pair create'}`,
      );
    }
    return found;
  }

  /** Issues a token the other cluster pairs with (valid `ttlSeconds`, for one pair). */
  async issueToken(ttlSeconds = DEFAULT_TOKEN_TTL_SECONDS): Promise<{ token: string; expires: string }> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 60 || ttlSeconds > 7 * 86400) {
      throw new FerryError('INVALID_ARGUMENT', 'ttl_seconds: between 60 and 604800 (a week)', { field: 'ttl_seconds' });
    }
    const { id, secret } = newToken();
    const now = Date.now();
    const record: TokenRecord = {
      id,
      created: new Date(now).toISOString(),
      expires: new Date(now + ttlSeconds * 1000).toISOString(),
    };
    await this.options.vault.put(tokenSecret(id), secret);
    await this.options.store.put(tokenKey(id), record);
    await this.reload();
    return { token: formatToken(id, secret), expires: record.expires };
  }

  /**
   * Makes a pair with the cluster at `remoteUrl` from the token it issued. Nothing is kept here when the other side
   * refuses; when this side cannot record the pair after the other accepted, it asks the other to forget it.
   */
  async create(request: {
    name: string;
    remote_url: string;
    token: string;
    credential_id?: string;
    /** Where the other cluster reaches this one's API; default this node's API URL. */
    local_url?: string;
  }): Promise<PairRecord> {
    const name = validatePairName(request.name);
    const remoteUrl = validateRemoteUrl(request.remote_url);
    const token = parseToken(request.token);
    const localUrl = validateRemoteUrl(request.local_url ?? this.options.localUrl(), 'local_url');
    if ((await this.pairs()).some((p) => p.name === name)) {
      throw new FerryError(
        'ALREADY_EXISTS',
        `cluster pair ${name} already exists; delete it first or pick another name`,
      );
    }
    const local = await this.options.cluster();
    const pairId = randomUUID();
    const link = new PeerClient(remoteUrl, tokenIdentity(token.id), token.secret, `cluster pair ${name}`);
    let answer: AcceptAnswer;
    try {
      const body: AcceptRequest = {
        pair_id: pairId,
        cluster_id: local.id,
        cluster_name: local.name,
        endpoint: localUrl,
      };
      answer = await link.call<AcceptAnswer>('POST', '/peer/v1/pairs', { json: body });
    } finally {
      link.close();
    }
    const record: PairRecord = {
      id: pairId,
      name,
      remote_url: remoteUrl,
      remote_cluster_id: answer.cluster_id,
      remote_cluster_name: answer.cluster_name,
      created: new Date().toISOString(),
      initiated: true,
      ...(request.credential_id !== undefined && { credential_id: request.credential_id }),
    };
    const key = Buffer.from(answer.key, 'base64');
    try {
      await this.options.vault.put(pairSecret(pairId), key);
      const done = await this.options.store.txn(
        [{ key: pairKey(pairId), modRevision: 0 }],
        [{ op: 'put', key: pairKey(pairId), value: record }],
      );
      if (!done.succeeded) throw new FerryError('INTERNAL', `pair ${pairId} was recorded twice`);
    } catch (err: unknown) {
      await this.options.vault.delete(pairSecret(pairId)).catch(() => undefined);
      const back = new PeerClient(remoteUrl, pairIdentity(pairId), key, `cluster pair ${name}`);
      await back.call('DELETE', '/peer/v1/pairs').catch(() => undefined);
      back.close();
      throw err;
    }
    await this.reload();
    return record;
  }

  /** The other side of `create`: checks the token and records the pair here (the link's `t.` identity proved it). */
  async accept(tokenId: string, request: AcceptRequest): Promise<AcceptAnswer> {
    const local = await this.options.cluster();
    if (request.cluster_id === local.id) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        "a cluster cannot pair with itself: use the other cluster's URL and token",
      );
    }
    const tokenEntry = await this.options.store.getEntry<TokenRecord>(tokenKey(tokenId));
    const token = tokenEntry?.value;
    if (tokenEntry === undefined || token === undefined || Date.parse(token.expires) <= Date.now()) {
      throw new FerryError('PERMISSION_DENIED', 'the pair token expired; issue another with ferry cluster pair token');
    }
    if (token.used_by !== undefined && token.used_by !== request.pair_id) {
      throw new FerryError(
        'PERMISSION_DENIED',
        'the pair token was used already; issue another with ferry cluster pair token',
      );
    }
    const answer = (key: Buffer): AcceptAnswer => ({
      key: key.toString('base64'),
      cluster_id: local.id,
      cluster_name: local.name,
    });
    const existing = await this.options.store.get<PairRecord>(pairKey(request.pair_id));
    if (existing !== undefined) {
      const key = await this.options.vault.get(pairSecret(existing.id));
      if (key !== undefined) return answer(key);
    }
    const names = new Set((await this.pairs()).map((p) => p.name));
    let name = validPairName(request.cluster_name);
    for (let i = 2; names.has(name); i++) name = `${validPairName(request.cluster_name).slice(0, 58)}-${i}`;
    const key = randomBytes(32);
    const record: PairRecord = {
      id: request.pair_id,
      name,
      remote_url: validateRemoteUrl(request.endpoint, 'endpoint'),
      remote_cluster_id: request.cluster_id,
      remote_cluster_name: request.cluster_name,
      created: new Date().toISOString(),
      initiated: false,
    };
    await this.options.vault.put(pairSecret(record.id), key);
    const done = await this.options.store.txn(
      [{ key: tokenKey(tokenId), modRevision: tokenEntry.modRevision }],
      [
        { op: 'put', key: pairKey(record.id), value: record },
        { op: 'put', key: tokenKey(tokenId), value: { ...token, used_by: record.id } },
      ],
    );
    if (!done.succeeded) {
      await this.options.vault.delete(pairSecret(record.id));
      throw new FerryError('FAILED_PRECONDITION', 'the pair token changed meanwhile; try again');
    }
    await this.reload();
    return answer(key);
  }

  /** Deletes the pair here and asks the other cluster to forget it too (it may be unreachable: said in the answer). */
  async delete(ref: string): Promise<{ remote_deleted: boolean; remote_error?: string }> {
    const pair = await this.pair(ref);
    let remote: { remote_deleted: boolean; remote_error?: string } = { remote_deleted: true };
    try {
      await this.link(pair).call('DELETE', '/peer/v1/pairs', undefined, AbortSignal.timeout(PING_TIMEOUT_MS));
    } catch (err: unknown) {
      remote = { remote_deleted: false, remote_error: err instanceof Error ? err.message : String(err) };
    }
    await this.forget(pair.id);
    return remote;
  }

  /** Removes pair `id` here (record, key, link). */
  async forget(id: string): Promise<void> {
    await this.options.store.delete(pairKey(id));
    await this.options.vault.delete(pairSecret(id));
    this.clients.get(id)?.close();
    this.clients.delete(id);
    await this.reload();
  }

  /** The link to the other side of `pair`. */
  link(pair: PairRecord): PeerClient {
    let client = this.clients.get(pair.id);
    if (client === undefined) {
      const key = this.keys.get(pairIdentity(pair.id));
      if (key === undefined) {
        throw new FerryError(
          'FAILED_PRECONDITION',
          `cluster pair ${pair.name} has no key on this node; create it again`,
        );
      }
      client = new PeerClient(pair.remote_url, pairIdentity(pair.id), key, `cluster pair ${pair.name}`);
      this.clients.set(pair.id, client);
    }
    return client;
  }

  /** Records the rate a transfer over `pairId` reached (shown by status). */
  noteRate(pairId: string, bytesPerSecond: number): void {
    this.rates.set(pairId, bytesPerSecond);
  }

  /** Asks the other side whether the pair works, and how long it takes to answer. */
  async status(pair: PairRecord): Promise<PairStatus> {
    const started = performance.now();
    try {
      const answer = await this.link(pair).call<{ cluster_id: string; back?: string }>(
        'GET',
        '/peer/v1/ping?back=1',
        undefined,
        AbortSignal.timeout(PING_TIMEOUT_MS * 2),
      );
      if (answer.cluster_id !== pair.remote_cluster_id) {
        return { status: 'Error', reason: `another cluster (${answer.cluster_id}) answers at ${pair.remote_url}` };
      }
      const rate = this.rates.get(pair.id);
      const degraded = answer.back !== undefined && answer.back !== 'ok';
      return {
        status: degraded ? 'Degraded' : 'Ready',
        ...(degraded && {
          reason: `the other cluster cannot reach this one (${answer.back}): its calls here (failback, clean-up) fail`,
        }),
        rtt_ms: Math.round((performance.now() - started) * 100) / 100,
        ...(rate !== undefined && { bandwidth_bytes_per_second: Math.round(rate) }),
      };
    } catch (err: unknown) {
      const reason = isFerryError(err) ? err.message : String(err);
      return { status: 'Error', reason };
    }
  }

  /** Whether this cluster reaches the other side of pair `pairId` ('ok'), else why not (the other side asks). */
  async reachBack(pairId: string): Promise<string> {
    try {
      const pair = await this.pair(pairId);
      await this.link(pair).call('GET', '/peer/v1/ping', undefined, AbortSignal.timeout(PING_TIMEOUT_MS));
      return 'ok';
    } catch (err: unknown) {
      return err instanceof Error ? err.message : String(err);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.watches) await w.close();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

/** A cluster's name made into a pair name. */
function validPairName(clusterName: string): string {
  const cleaned = clusterName
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 63);
  return cleaned === '' ? 'peer' : cleaned;
}
