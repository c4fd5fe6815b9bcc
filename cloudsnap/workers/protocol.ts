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

/**
 * Collect the whole heap now (no reply): the pool dropped its spare buffers, which this thread's heap may hold, or a
 * job's main thread ran a full collection of its own.
 */
export interface CollectRequest {
  type: 'collect';
}

export type WorkerRequest = HashRequest | CompressRequest | DecodeRequest | CollectRequest;
export type WorkerReply = HashReply | CompressReply | DecodeReply | ErrorReply;

/*
 * Structured clone builds a message's hidden class by adding properties one by one to a plain object's, and V8 drops
 * such a class at any full collection that finds no object using it; code optimized against it (a handler with
 * everything it inlines) is then thrown away and compiled again. A literal's class lives as long as the code that
 * creates it, so each side copies what it receives into a literal of its type first. Without it, a 16 GiB restore
 * compiled the pool's decode 9 to 12 times (40-50 ms and several MiB of compiler memory each), and a worker collecting
 * with the main thread compiled its handlers again after every collection (about 120 compilations a job).
 */

/** A reply in an object literal of its type (the pool's side). */
export function ownReply(raw: WorkerReply): WorkerReply {
  switch (raw.type) {
    case 'hashed':
      return { type: 'hashed', batch: raw.batch, zero: raw.zero, ids: raw.ids };
    case 'compressed':
      return { type: 'compressed', batch: raw.batch, lengths: raw.lengths };
    case 'decoded':
      return { type: 'decoded', batch: raw.batch, lengths: raw.lengths };
    case 'error':
      return { type: 'error', batch: raw.batch, message: raw.message, corrupt: raw.corrupt };
  }
}

/** A request in an object literal of its type (the worker's side). */
export function ownRequest(raw: WorkerRequest): WorkerRequest {
  switch (raw.type) {
    case 'hash':
      return {
        type: 'hash',
        batch: raw.batch,
        idKey: raw.idKey,
        length: raw.length,
        chunkSize: raw.chunkSize,
        shared: raw.shared,
      };
    case 'compress':
      return {
        type: 'compress',
        batch: raw.batch,
        shared: raw.shared,
        length: raw.length,
        chunkSize: raw.chunkSize,
        chunks: raw.chunks,
        out: raw.out,
        outOffset: raw.outOffset,
      };
    case 'decode':
      return {
        type: 'decode',
        batch: raw.batch,
        idKey: raw.idKey,
        key: raw.key,
        data: raw.data,
        dataOffset: raw.dataOffset,
        dataLength: raw.dataLength,
        spans: raw.spans,
        ids: raw.ids,
        where: raw.where,
        out: raw.out,
        outOffset: raw.outOffset,
        capacity: raw.capacity,
      };
    case 'collect':
      return { type: 'collect' };
  }
}
