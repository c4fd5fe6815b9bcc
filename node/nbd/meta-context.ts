/**
 * NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT data:
 *   export name length (4) | export name | query count (4) | { query length (4) | query } x count
 * The only context served is `base:allocation`.
 */
import { BASE_ALLOCATION } from './constants.js';

export interface MetaContextRequest {
  exportName: string;
  queries: string[];
}

/** Parses the option data; undefined when it is syntactically invalid (lengths running past the data). */
export function parseMetaContextRequest(data: Buffer): MetaContextRequest | undefined {
  let at = 0;
  const readString = (): string | undefined => {
    if (at + 4 > data.length) return undefined;
    const length = data.readUInt32BE(at);
    at += 4;
    if (length > data.length - at) return undefined;
    const text = data.toString('utf8', at, at + length);
    at += length;
    return text;
  };
  const exportName = readString();
  if (exportName === undefined || at + 4 > data.length) return undefined;
  const count = data.readUInt32BE(at);
  at += 4;
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    const query = readString();
    if (query === undefined) return undefined;
    queries.push(query);
  }
  if (at !== data.length) return undefined;
  return { exportName, queries };
}

/**
 * Contexts a query list selects. For LIST, no queries means "everything" and `base:` is a wildcard; for SET, no
 * queries selects nothing and `base:` is ignored, as the spec says. Unknown namespaces and leaf names are ignored.
 */
export function matchContexts(queries: string[], listing: boolean): string[] {
  if (queries.length === 0) return listing ? [BASE_ALLOCATION] : [];
  const selected = queries.some((q) => q === BASE_ALLOCATION || (listing && q === 'base:'));
  return selected ? [BASE_ALLOCATION] : [];
}
