#!/usr/bin/env node
// The `weft` command. The sources are TypeScript run through tsx, so the
// package needs no build step before `npm start` or `npx weft`.
import { register } from 'tsx/esm/api';

register();
await import('../control/cli/main.ts');
