import { describe, expect, it } from 'vitest';
import { FerryError } from '../../common/index.js';
import type { ListPage, ObjectInfo, ObjectStore } from '../store/index.js';
import { checkAccess, storeCredential } from './access.js';
import type { Credential } from './types.js';

const base = { credential_id: 'id', name: 'c', bucket: 'b', kek: 'default', labels: {}, created: '' };

describe('storeCredential', () => {
  it('maps S3 settings: scheme from disable_ssl, path style by default for custom endpoints', () => {
    const c: Credential = {
      ...base,
      provider: 's3',
      prefix: 'p',
      aws_credential: { access_key: 'A', secret_key: 'S', endpoint: '127.0.0.1:7480', disable_ssl: true },
    };
    expect(storeCredential(c)).toEqual({
      provider: 's3',
      bucket: 'b',
      prefix: 'p',
      endpoint: 'http://127.0.0.1:7480',
      access_key: 'A',
      secret_key: 'S',
      path_style: true,
    });
    const aws: Credential = { ...base, provider: 's3', aws_credential: { access_key: 'A', secret_key: 'S' } };
    expect(storeCredential(aws)).toMatchObject({ path_style: false });
    expect(storeCredential(aws).endpoint).toBeUndefined();
    const vhost = { ...c, aws_credential: { ...c.aws_credential!, endpoint: 'https://x', disable_path_style: true } };
    expect(storeCredential(vhost)).toMatchObject({ endpoint: 'https://x', path_style: false });
  });

  it('maps Azure, Google (HMAC over the S3 API) and directory settings', () => {
    expect(
      storeCredential({ ...base, provider: 'azure', azure_credential: { account_name: 'acct', account_key: 'K' } }),
    ).toEqual({
      provider: 'azure',
      bucket: 'b',
      access_key: 'acct',
      secret_key: 'K',
    });
    expect(
      storeCredential({ ...base, provider: 'google', google_credential: { access_key: 'G', secret_key: 'S' } }),
    ).toEqual({
      provider: 'google',
      bucket: 'b',
      access_key: 'G',
      secret_key: 'S',
    });
    expect(storeCredential({ ...base, provider: 'directory', directory_credential: { path: '/srv/ferry' } })).toEqual({
      provider: 'directory',
      bucket: '/srv/ferry/b',
    });
  });
});

/** An in-memory store that records calls and can fail one kind of call. */
class RecordingStore implements ObjectStore {
  readonly location = 'memory://test';
  readonly conditionalCreate = false;
  readonly calls: string[] = [];
  readonly objects = new Map<string, Buffer>();
  constructor(private readonly failOn?: string) {}

  private step(name: string): void {
    this.calls.push(name);
    if (name === this.failOn) throw new FerryError('PERMISSION_DENIED', `${name} denied`);
  }
  async put(key: string, body: Buffer): Promise<void> {
    this.step('put');
    this.objects.set(key, body);
  }
  async get(key: string): Promise<Buffer> {
    this.step('get');
    return this.objects.get(key) ?? Buffer.alloc(0);
  }
  async head(key: string): Promise<ObjectInfo | undefined> {
    this.step('head');
    const body = this.objects.get(key);
    return body === undefined ? undefined : { key, size: body.length };
  }
  async list(): Promise<ListPage> {
    this.step('list');
    return { objects: [] };
  }
  async delete(keys: readonly string[]): Promise<void> {
    this.step('delete');
    for (const key of keys) this.objects.delete(key);
  }
}

describe('checkAccess', () => {
  it('lists, puts, heads and deletes a probe', async () => {
    const store = new RecordingStore();
    await checkAccess(store);
    expect(store.calls).toEqual(['list', 'put', 'head', 'delete']);
    expect(store.objects.size).toBe(0);
  });

  it("passes the store's error on, and still removes the probe when reading it back fails", async () => {
    const denied = new RecordingStore('put');
    await expect(checkAccess(denied)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    const noHead = new RecordingStore('head');
    await expect(checkAccess(noHead)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    expect(noHead.calls).toEqual(['list', 'put', 'head', 'delete']);
    expect(noHead.objects.size).toBe(0);
    const noDelete = new RecordingStore('delete');
    await expect(checkAccess(noDelete)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  });
});
