/**
 * The function a generic Node instance runs once before it says READY (shim.ts,
 * warmUp): importing it and serving one request through the whole path compiles the
 * shim's, the Workers adapter's and fetch's code while nobody waits, instead of on a
 * function's first request. Every bundle starts with esbuild's banner, which imports
 * node:module and calls createRequire(import.meta.url): the first of each in a process
 * costs about 1 ms, so the warm-up pays it too.
 */
import { createRequire } from 'node:module';

createRequire(import.meta.url);

export default {
  async fetch(request: Request): Promise<Response> {
    const body = await request.text();
    return new Response(`${request.method} ${new URL(request.url).pathname} ${request.headers.get('content-type')} ${body.length}`, {
      headers: { 'content-type': 'text/plain' },
    });
  },
};
