/** Messages between the backup pipeline and its chunk workers. */

/** Phase 1: zero check and keyed id of every chunk of a batch; the worker keeps the batch for phase 2. */
export interface HashRequest {
  type: 'hash';
  batch: number;
  /** The repository's chunk-id key (HMAC key). */
  idKey: Uint8Array;
  data: ArrayBuffer;
  length: number;
  chunkSize: number;
}

export interface HashReply {
  type: 'hashed';
  batch: number;
  /** 1 where the chunk is all zeros. */
  zero: Uint8Array;
  /** 32 bytes per chunk (zeros for zero chunks). */
  ids: Uint8Array;
}

/** Phase 2: compress the chunks the repository lacks (codec byte first), then forget the batch. */
export interface CompressRequest {
  type: 'compress';
  batch: number;
  chunks: number[];
}

export interface CompressReply {
  type: 'compressed';
  batch: number;
  /** Concatenated bodies: codec u8 | payload. */
  data: ArrayBuffer;
  lengths: number[];
}

/** Restore: authenticate, decrypt, decompress and re-hash the blobs of one ranged read of a pack. */
export interface DecodeRequest {
  type: 'decode';
  batch: number;
  idKey: Uint8Array;
  /** The pack's object key. */
  key: Uint8Array;
  data: ArrayBuffer;
  blobs: Array<{ offset: number; length: number; nonce: number; id: Uint8Array; where: string }>;
}

export interface DecodeReply {
  type: 'decoded';
  batch: number;
  /** Concatenated plaintext chunks. */
  data: ArrayBuffer;
  lengths: number[];
}

export interface ErrorReply {
  type: 'error';
  batch: number;
  message: string;
  /** The data failed verification (DATA_CORRUPTION), as opposed to a fault of the worker. */
  corrupt: boolean;
}

export type WorkerRequest = HashRequest | CompressRequest | DecodeRequest;
export type WorkerReply = HashReply | CompressReply | DecodeReply | ErrorReply;
