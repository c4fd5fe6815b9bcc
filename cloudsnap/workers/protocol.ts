/** Messages between the backup pipeline and its chunk workers. */

/**
 * Phase 1: zero check and keyed id of every chunk of a batch. The worker copies the batch into `shared` (a buffer
 * from the pool's shared batch buffers) first, so phase 2 can run on any worker, split over several.
 */
export interface HashRequest {
  type: 'hash';
  batch: number;
  /** The repository's chunk-id key (HMAC key). */
  idKey: Uint8Array;
  length: number;
  chunkSize: number;
  /** The batch's data (its first `length` bytes), kept there for phase 2. */
  shared: SharedArrayBuffer;
}

export interface HashReply {
  type: 'hashed';
  batch: number;
  /** 1 where the chunk is all zeros. */
  zero: Uint8Array;
  /** 32 bytes per chunk (zeros for zero chunks). */
  ids: Uint8Array;
}

/**
 * Phase 2: compress the chosen chunks (codec byte first) of a batch held in a shared buffer, writing the bodies one
 * after another into `out` from `outOffset` (room for chunkSize + 1 bytes per chunk).
 */
export interface CompressRequest {
  type: 'compress';
  batch: number;
  shared: SharedArrayBuffer;
  length: number;
  chunkSize: number;
  chunks: number[];
  out: SharedArrayBuffer;
  outOffset: number;
}

export interface CompressReply {
  type: 'compressed';
  batch: number;
  /** Length of each body written to the request's `out`, in order. */
  lengths: number[];
}

/**
 * Restore: authenticate, decrypt, decompress and re-hash the blobs of one ranged read of a pack, writing the
 * plaintexts one after another into `out` (which has room for `capacity` bytes).
 */
export interface DecodeRequest {
  type: 'decode';
  batch: number;
  idKey: Uint8Array;
  /** The pack's object key. */
  key: Uint8Array;
  /** The ranged read: `dataLength` bytes from `dataOffset`, shared (read in place) or handed over. */
  data: SharedArrayBuffer | ArrayBuffer;
  dataOffset: number;
  dataLength: number;
  /** Per blob: its offset in `data`, its length and its nonce (three numbers each, in order). */
  spans: Uint32Array;
  /** Per blob, its chunk id (32 bytes each, in order). */
  ids: Uint8Array;
  /** Where the blobs are, for error messages: "chunk <id> " is put before it. */
  where: string;
  /** The plaintexts go end to end into `capacity` bytes of `out` from `outOffset`. */
  out: SharedArrayBuffer;
  outOffset: number;
  capacity: number;
}

export interface DecodeReply {
  type: 'decoded';
  batch: number;
  /** Length of each plaintext written to the request's `out`, in order. */
  lengths: number[];
}

export interface ErrorReply {
  type: 'error';
  batch: number;
  message: string;
  /** The data failed verification (DATA_CORRUPTION), as opposed to a fault of the worker. */
  corrupt: boolean;
}

/** Collect the whole heap now (no reply): the pool dropped its spare buffers, which this thread's heap may hold. */
export interface CollectRequest {
  type: 'collect';
}

export type WorkerRequest = HashRequest | CompressRequest | DecodeRequest | CollectRequest;
export type WorkerReply = HashReply | CompressReply | DecodeReply | ErrorReply;
