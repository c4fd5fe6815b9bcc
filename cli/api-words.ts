/**
 * API error messages in CLI words. The API's messages point API users at routes ("list them with GET /v1/volumes");
 * a CLI user is pointed at the command that does the same (`ferry volume list`). Sizes in bytes are the API's own
 * business; the CLI rewrites only the route hints it knows, and leaves any other text as the API wrote it.
 */

/** Route (as API messages quote it) -> the command a CLI user runs instead. */
export const ROUTE_COMMANDS: Readonly<Record<string, string>> = {
  'GET /v1/volumes': 'ferry volume list',
  'GET /v1/credentials': 'ferry credentials list',
  'POST /v1/credentials': 'ferry credentials create',
  'POST /v1/cloudbackups/status': 'ferry cloudsnap status',
  'POST /v1/cloudbackups/enumerate/filters': 'ferry cloudsnap list',
  'GET /v1/cloudbackups/schedules': 'ferry cloudsnap schedules list',
  'GET /v1/schedulepolicies': 'ferry policy list',
};

/** `METHOD /v1/...` as it appears in a message (a route ends at white space, a quote, `;`, `,` or `)`). */
const ROUTE_IN_TEXT = /\b(GET|POST|PUT|DELETE) (\/v1\/[A-Za-z0-9_/{}.-]*[A-Za-z0-9_}])/g;

/** `message` with each route it quotes that has a command replaced by that command, in backquotes. */
export function inCliWords(message: string): string {
  return message.replace(ROUTE_IN_TEXT, (route: string) => {
    const command = ROUTE_COMMANDS[route];
    return command === undefined ? route : `\`${command}\``;
  });
}
