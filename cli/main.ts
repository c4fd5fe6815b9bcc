#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=1 --initial-old-space-size=128
/** Entry point of the `ferry` command (package.json `bin`: dist/cli/main.js). */
import { run } from './program.js';

// Exit explicitly: idle keep-alive sockets of the API client must not hold the command open.
process.exit(await run(process.argv));
