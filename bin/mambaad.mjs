#!/usr/bin/env node
// `npx mambaad …` runs the TypeScript CLI through tsx; GPU servers run the esbuild bundle (npm run build:node).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
