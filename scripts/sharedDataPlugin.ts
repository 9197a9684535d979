import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, relative, resolve, sep } from 'node:path';
import type { Plugin } from 'vite';

/**
 * Serves this workplace's ../shared/data and ../shared/models read-only under /shared/ (same origin, so the studio
 * needs no network access), and /shared/index.json listing every file, so the studio can offer the sample sets and
 * the encoder weights without copying them into the repository. A machine without ../shared gets an empty index.
 */
const SERVED = ['data', 'models'] as const;
const CONTENT_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.bmp': 'image/bmp',
  '.webp': 'image/webp',
  '.safetensors': 'application/octet-stream',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
};

function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else out.push(relative(root, path).split(sep).join('/'));
    }
  };
  for (const top of SERVED) if (existsSync(join(root, top))) walk(join(root, top));
  return out;
}

export function sharedDataPlugin(sharedDir: string): Plugin {
  const root = resolve(sharedDir);
  let index: string | undefined;
  const handle = (req: IncomingMessage, res: ServerResponse, next: () => void) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!url.pathname.startsWith('/shared/') || (req.method !== 'GET' && req.method !== 'HEAD')) return next();
    const rest = decodeURIComponent(url.pathname.slice('/shared/'.length));
    if (rest === 'index.json') {
      index ??= JSON.stringify({ files: existsSync(root) ? listFiles(root) : [] });
      res.setHeader('Content-Type', 'application/json');
      res.end(index);
      return;
    }
    const path = resolve(root, rest);
    const inside = SERVED.some((top) => path.startsWith(join(root, top) + sep));
    if (!inside || !existsSync(path) || !statSync(path).isFile()) {
      res.statusCode = 404;
      res.end('not found');
      return;
    }
    res.setHeader('Content-Type', CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream');
    res.setHeader('Content-Length', statSync(path).size);
    createReadStream(path).pipe(res);
  };
  return {
    name: 'mambaad-shared-data',
    configureServer: (server) => void server.middlewares.use(handle),
    configurePreviewServer: (server) => void server.middlewares.use(handle),
  };
}
