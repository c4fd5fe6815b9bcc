import type { Writable } from 'node:stream';

/**
 * Corks a socket until the next turn of the event loop, at most once per turn: every frame written in one turn goes
 * out in one write (one TLS record where they fit).
 */
export class TickCork {
  private corked = false;

  constructor(private readonly socket: Writable) {}

  /** Corks the socket now, unless this turn did already; it is uncorked at the next turn. */
  hold(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    setImmediate(() => {
      this.corked = false;
      this.socket.uncork();
    });
  }
}
