/**
 * The state of one object read across attempts: where its bytes go, how many have arrived, and the object's ETag, so
 * an attempt after a broken one asks only for the rest (a Range from the first missing byte, `If-Match` the ETag) and
 * a changed object is refused rather than spliced.
 */
import type { Readable } from 'node:stream';
import { FerryError } from '../../common/index.js';
import { bodyBuffer } from './keys.js';

export class ResumableRead {
  /** Bytes wanted: the range's length, or the object's size once an answer has told it. */
  private length: number | undefined;
  private out: Buffer | undefined;
  /** Bytes of the body in place. */
  at = 0;
  /** The object's ETag as the first answer gave it (quoted), sent as If-Match on later attempts. */
  etag: string | undefined;

  constructor(
    /** For messages: the key as the caller named it, or the store's full name for it. */
    readonly what: string,
    readonly range: { offset: number; length: number } | undefined,
    private readonly into: Buffer | undefined,
  ) {
    this.length = range?.length;
  }

  /** The range the next attempt asks for, or undefined for a whole object from its start. */
  nextRange(): { offset: number; count: number } | undefined {
    if (this.length === undefined || (this.range === undefined && this.at === 0)) return undefined;
    return { offset: (this.range?.offset ?? 0) + this.at, count: this.length - this.at };
  }

  /** The Range header value of the next attempt, or undefined for a whole object from its start. */
  rangeHeader(): string | undefined {
    const next = this.nextRange();
    return next === undefined ? undefined : `bytes=${next.offset}-${next.offset + next.count - 1}`;
  }

  /**
   * Where an answer's body goes, given its status, ETag and length: the part of the result still missing, or
   * undefined when the answer is not the one asked for (an error status, or a range the object does not fully hold).
   * Throws FAILED_PRECONDITION when the object's ETag changed since an earlier attempt.
   */
  accept(status: number, etag: string | undefined, length: number): Buffer | undefined {
    const ranged = this.rangeHeader() !== undefined;
    if (status !== (ranged ? 206 : 200)) return undefined;
    if (this.etag !== undefined && etag !== undefined && etag !== this.etag) throw this.changed(etag);
    if (!ranged) {
      this.length = length;
      this.out = bodyBuffer(length, this.into);
    } else if (length !== (this.length as number) - this.at) {
      return undefined;
    }
    this.etag ??= etag;
    this.out ??= bodyBuffer(this.length as number, this.into);
    return this.out.subarray(this.at, this.length);
  }

  /** Records `n` more bytes of the body in place. */
  advance(n: number): void {
    this.at += n;
  }

  /** Reads the rest of an answer's body into place (`into`, as `accept` gave it), touching `idle` at each piece. */
  async receive(body: Readable, into: Buffer, idle: { touch(): void }): Promise<void> {
    await readBodyInto(body, into, (n) => {
      this.advance(n);
      idle.touch();
    });
  }

  /** The whole result; UNAVAILABLE (the read is retried from where it stopped) when the body ended short of it. */
  complete(name: string): Buffer {
    const bytes = this.result();
    if (bytes === undefined)
      throw new FerryError('UNAVAILABLE', `the body of ${name} ended short: the read is retried`);
    return bytes;
  }

  /** The whole result once every byte is in place, else undefined. */
  result(): Buffer | undefined {
    return this.out !== undefined && this.at === this.length ? this.out : undefined;
  }

  /** The error of an object that changed between attempts (`now` its new ETag, when known). */
  changed(now?: string): FerryError {
    const seen = now === undefined ? '' : `, now ${now}`;
    return new FerryError(
      'FAILED_PRECONDITION',
      `${this.what} changed while it was being read (ETag ${this.etag ?? 'unknown'} when the read began${seen}): read it again`,
    );
  }
}

/**
 * Reads a response body into `into` as it arrives (no list of chunks and no second copy), reporting each piece
 * placed. A body that runs past `into` is an error (UNAVAILABLE: the read is retried); one that ends short leaves the
 * rest to the caller.
 */
async function readBodyInto(body: Readable, into: Buffer, placed: (n: number) => void): Promise<void> {
  let at = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (at + chunk.length > into.length) {
      body.destroy();
      throw new FerryError(
        'UNAVAILABLE',
        `an answer ran ${at + chunk.length - into.length} bytes past its length: retry`,
      );
    }
    chunk.copy(into, at);
    at += chunk.length;
    placed(chunk.length);
  }
}
