/**
 * Bytes received from a socket, queued as the chunks they came in, taken off the front a frame field at a time.
 * Taking copies only when a field spans chunks, so a large payload costs one copy at most.
 */
const EMPTY = Buffer.alloc(0);

export class ByteQueue {
  private readonly chunks: Buffer[] = [];
  private head = 0;
  private total = 0;

  /** Bytes queued. */
  get length(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** The next `n` bytes, removed from the queue; undefined (nothing removed) when fewer are queued. */
  take(n: number): Buffer | undefined {
    if (n > this.total) return undefined;
    if (n === 0) return EMPTY;
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0] as Buffer;
      const count = Math.min(n - filled, chunk.length - this.head);
      chunk.copy(out, filled, this.head, this.head + count);
      filled += count;
      this.advance(count);
    }
    return out;
  }

  /** Moves the next `n` bytes into `target` (from its byte 0); false (nothing removed) when fewer are queued. */
  takeInto(target: Buffer, n: number): boolean {
    if (n > this.total) return false;
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0] as Buffer;
      const count = Math.min(n - filled, chunk.length - this.head);
      chunk.copy(target, filled, this.head, this.head + count);
      filled += count;
      this.advance(count);
    }
    return true;
  }

  private advance(n: number): void {
    this.head += n;
    this.total -= n;
    const first = this.chunks[0];
    if (first !== undefined && this.head === first.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}
