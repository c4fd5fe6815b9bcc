/** Where the authenticated principal travels with a request: Hono's context variable `principal`. */
import type { Context } from 'hono';
import type { Principal } from './principal.js';

declare module 'hono' {
  interface ContextVariableMap {
    /** Set by the bearer-token middleware; absent when the app runs without authentication. */
    principal?: Principal;
  }
}

/** The caller of this request, or undefined when the app runs without authentication. */
export function principalOf(c: Context): Principal | undefined {
  return c.get('principal');
}
