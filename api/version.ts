/** Ferry's own version (kept equal to package.json's `version`; a test checks it). */
export const FERRY_VERSION = '0.1.0';

/**
 * The OpenStorage SDK whose REST routes and field names this API follows: routes and messages as in
 * libopenstorage/openstorage `api/api.proto` (SdkVersion 0.22.9), plus the `labels` fields that later SDK
 * versions added to create, clone (`additional_labels`), update and inspect.
 */
export const OPENSTORAGE_SDK_VERSION = { major: 0, minor: 22, patch: 9 } as const;
