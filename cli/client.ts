/** A small typed client for the Ferry HTTP API (the routes of api/routes/*). */
import type { InspectView, LocalityResponse } from '../api/index.js';
import type { ChangedBlocksPage } from '../node/index.js';
import { inCliWords } from './api-words.js';

/** Where the CLI finds the API when neither `--api` nor FERRY_API_URL says. */
export const DEFAULT_API_URL = 'http://127.0.0.1:9001';

/** An error answered by the API (or UNAVAILABLE when it could not be reached). */
export class ApiError extends Error {
  /** FerryError code from the response body (`INVALID_ARGUMENT`, `NOT_FOUND`, ...). */
  readonly code: string;
  /** HTTP status, or 0 when no response arrived. */
  readonly status: number;
  /** The request field at fault, for INVALID_ARGUMENT. */
  readonly field: string | undefined;

  constructor(code: string, message: string, status: number, field?: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
    this.field = field;
  }
}

/** The bearer token a client sends, and what to tell the user when the API refuses it. */
export interface ClientToken {
  /** Undefined sends no Authorization header. */
  token: string | undefined;
  /** Added to an UNAUTHENTICATED answer's message: where the token came from and how to give the right one. */
  hint?: string;
}

/** SdkVolumeCreateRequest. */
export interface CreateVolumeBody {
  name: string;
  spec: {
    size: number;
    ha_level?: number;
    replica_set?: { nodes: string[] };
    racks?: string[];
    zones?: string[];
    shared?: boolean;
    encrypted?: boolean;
  };
  labels?: Record<string, string>;
}

/** SdkVolumeUpdateRequest (spec: VolumeSpecUpdate's size, ha_level, replica_set; Ferry's resync_bandwidth). */
export interface UpdateVolumeBody {
  spec?: { size?: number; ha_level?: number; replica_set?: { nodes: string[] }; resync_bandwidth?: number | null };
  labels?: Record<string, string>;
}

/** Query of the changed_blocks addition. */
export interface ChangedBlocksQuery {
  base_snapshot_id?: string;
  target_snapshot_id?: string;
  offset?: number;
  limit?: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeFetchFailure(err: unknown): string {
  const cause = err instanceof Error ? err.cause : undefined;
  if (isRecord(cause) && typeof cause.code === 'string') return cause.code;
  return err instanceof Error ? err.message : String(err);
}

/** Calls the API at `baseUrl`; every method resolves to the response JSON or rejects with ApiError. */
export class FerryClient {
  readonly baseUrl: string;

  /** Where the bearer token comes from (asked once, on the first request); undefined sends no Authorization. */
  private readonly tokenSource: (() => Promise<ClientToken>) | undefined;
  private token: Promise<ClientToken> | undefined;

  constructor(baseUrl: string = DEFAULT_API_URL, options: { token?: () => Promise<ClientToken> } = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.tokenSource = options.token;
  }

  private async headers(body: unknown): Promise<Record<string, string>> {
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
    const { token } = await this.tokenOf();
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    return headers;
  }

  private tokenOf(): Promise<ClientToken> {
    this.token ??= this.tokenSource?.() ?? Promise.resolve({ token: undefined });
    return this.token;
  }

  /** Sends one request; a non-2xx answer becomes an ApiError carrying the body's code, message and field. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    const headers = await this.headers(body);
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
    } catch (err: unknown) {
      const reason = describeFetchFailure(err);
      throw new ApiError(
        'UNAVAILABLE',
        `cannot reach the Ferry API at ${this.baseUrl} (${reason}); is \`ferry node start\` running? Set --api or FERRY_API_URL`,
        0,
        undefined,
        err,
      );
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? {} : JSON.parse(text);
    } catch (err: unknown) {
      throw new ApiError(
        'INTERNAL',
        `the API answered ${response.status} with a body that is not JSON`,
        response.status,
        undefined,
        err,
      );
    }
    if (!response.ok) {
      const code = isRecord(parsed) && typeof parsed.code === 'string' ? parsed.code : 'INTERNAL';
      const message =
        isRecord(parsed) && typeof parsed.message === 'string' ? parsed.message : `HTTP ${response.status}`;
      const field = isRecord(parsed) && typeof parsed.field === 'string' ? parsed.field : undefined;
      const hint = code === 'UNAUTHENTICATED' ? (await this.tokenOf()).hint : undefined;
      const text = hint === undefined ? inCliWords(message) : `${inCliWords(message)} (${hint})`;
      throw new ApiError(code, text, response.status, field);
    }
    return parsed as T;
  }

  /** POST /v1/volumes. */
  createVolume(body: CreateVolumeBody): Promise<{ volume_id: string }> {
    return this.request('POST', '/v1/volumes', body);
  }

  /** POST /v1/volumes/inspectwithfilters. */
  inspectVolumes(
    filters: { name?: string; labels?: Record<string, string> } = {},
  ): Promise<{ volumes: InspectView[] }> {
    return this.request('POST', '/v1/volumes/inspectwithfilters', filters);
  }

  /** GET /v1/volumes/inspect/{id}: a volume (id or name) or a snapshot (id or VOLUME@SNAPSHOT). */
  inspect(ref: string): Promise<InspectView> {
    return this.request('GET', `/v1/volumes/inspect/${encodeURIComponent(ref)}`);
  }

  /** PUT /v1/volumes/{id}. */
  updateVolume(ref: string, body: UpdateVolumeBody): Promise<Record<string, never>> {
    return this.request('PUT', `/v1/volumes/${encodeURIComponent(ref)}`, body);
  }

  /** GET /v1/volumes/{id}/locality: the online nodes ranked for running the volume's user. */
  locality(ref: string): Promise<LocalityResponse> {
    return this.request('GET', `/v1/volumes/${encodeURIComponent(ref)}/locality`);
  }

  /** DELETE /v1/volumes/{id}: a volume or a snapshot; `withSchedules` deletes the backup schedules using it too. */
  delete(ref: string, withSchedules = false): Promise<{ deleted_schedule_ids?: string[] }> {
    const query = withSchedules ? '?with_schedules=true' : '';
    return this.request('DELETE', `/v1/volumes/${encodeURIComponent(ref)}${query}`);
  }

  /** POST /v1/volumes/clone. */
  cloneVolume(body: {
    name: string;
    parent_id: string;
    additional_labels?: Record<string, string>;
  }): Promise<{ volume_id: string }> {
    return this.request('POST', '/v1/volumes/clone', body);
  }

  /** GET /v1/volumes/{id}/changed_blocks (one page). */
  changedBlocks(ref: string, query: ChangedBlocksQuery = {}): Promise<ChangedBlocksPage> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
    const search = params.size > 0 ? `?${params.toString()}` : '';
    return this.request('GET', `/v1/volumes/${encodeURIComponent(ref)}/changed_blocks${search}`);
  }

  /** POST /v1/volumes/snapshots. */
  createSnapshot(body: { volume_id: string; name: string; labels?: Record<string, string> }): Promise<{
    snapshot_id: string;
  }> {
    return this.request('POST', '/v1/volumes/snapshots', body);
  }

  /** GET /v1/volumes/snapshots/{volume_id}. */
  enumerateSnapshots(volumeRef: string): Promise<{ volume_snapshot_ids: string[] }> {
    return this.request('GET', `/v1/volumes/snapshots/${encodeURIComponent(volumeRef)}`);
  }

  /** POST /v1/volumes/snapshots/restore. */
  restoreSnapshot(body: { volume_id: string; snapshot_id: string }): Promise<Record<string, never>> {
    return this.request('POST', '/v1/volumes/snapshots/restore', body);
  }

  /** GET /v1/identities/version. */
  version(): Promise<{
    sdk_version: { major: number; minor: number; patch: number; version: string };
    version: { driver: string; version: string; details: Record<string, string> };
  }> {
    return this.request('GET', '/v1/identities/version');
  }
}
