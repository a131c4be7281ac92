/**
 * The web console (console/, a React app built by `npm install`'s postinstall into console/dist),
 * served on the API's port: each built file at its own path, and index.html for every other GET
 * outside /api, so the console's own routes (/gateways/new, /products/…) survive a reload. Without a
 * build, `/` answers a short page that says how to make one.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { packageRoot } from '../core/package-root.ts';

export const CONSOLE_DIST = path.join(packageRoot(), 'console', 'dist');

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gatehouse</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:640px;margin:10vh auto;padding:0 20px;color:#1b2333}
code,pre{background:#eef0f5;border-radius:4px;padding:2px 6px}pre{padding:10px 14px}</style></head>
<body><h1>Gatehouse is running</h1>
<p>The web console has not been built. <code>npm install</code> builds it; to build it by hand:</p>
<pre>npm --prefix console install &amp;&amp; npm --prefix console run build</pre>
<p>Then restart Gatehouse. The REST API works meanwhile: <a href="/api/docs">/api/docs</a>.</p></body></html>
`;

export interface ConsoleOptions {
  /** The built console; default console/dist of this checkout. */
  distDir?: string;
}

type NotFoundHandler = (request: FastifyRequest, reply: FastifyReply) => unknown;

/** A page request the console answers: a GET or HEAD outside /api for a path without a file extension. */
function isConsolePath(request: FastifyRequest): boolean {
  if (request.method !== 'GET' && request.method !== 'HEAD') return false;
  const pathname = request.url.split('?')[0] ?? '/';
  if (pathname === '/api' || pathname.startsWith('/api/')) return false;
  const last = pathname.slice(pathname.lastIndexOf('/') + 1);
  return !last.includes('.');
}

/**
 * Registers the built files (one route each, so unknown /api paths keep their own 404) and returns
 * the not-found handler to install at the root: index.html for console paths, `fallback` otherwise.
 */
export function registerConsole(app: FastifyInstance, fallback: NotFoundHandler, options: ConsoleOptions = {}): NotFoundHandler {
  const distDir = options.distDir ?? CONSOLE_DIST;
  const indexFile = path.join(distDir, 'index.html');
  const built = existsSync(indexFile);
  if (built) {
    void app.register(fastifyStatic, {
      root: distDir,
      prefix: '/',
      wildcard: false,
      decorateReply: false,
      // Hashed asset names change with every build; index.html must always be fetched fresh.
      setHeaders: (reply, filePath) => {
        void reply.header('cache-control', filePath.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
      },
    });
  }
  let indexHtml: string | null = null;
  return async (request, reply) => {
    if (!isConsolePath(request)) return fallback(request, reply);
    if (!built) return reply.status(request.url === '/' ? 200 : 404).type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(NOT_BUILT_PAGE);
    indexHtml ??= await readFile(indexFile, 'utf8');
    return reply.status(200).type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(indexHtml);
  };
}
