import { AsyncLocalStorage } from 'node:async_hooks';

/** The request each async continuation belongs to, so log lines carry its id. */
export const requestContext = new AsyncLocalStorage<{ requestId: string; stream: number }>();

/**
 * Log lines written while handling a request start with RS <request id> US, so the
 * platform can file them under the request even when several run at once. Writes stay
 * on the real stdout/stderr pipes (synchronous on Linux), so nothing is lost when the
 * function calls process.exit right after logging.
 */
export const LOG_MARK_START = '\x1e';
export const LOG_MARK_END = '\x1f';

export function tagStdio(): void {
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
    let atLineStart = true;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      const ctx = requestContext.getStore();
      if (!ctx) {
        const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
        atLineStart = text.endsWith('\n');
        return write(chunk, ...rest);
      }
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
      const mark = `${LOG_MARK_START}${ctx.requestId}${LOG_MARK_END}`;
      let tagged = atLineStart ? mark + text : text;
      tagged = tagged.replace(/\n(?=[\s\S])/g, `\n${mark}`);
      atLineStart = text.endsWith('\n');
      return write(tagged, ...rest.filter((r) => typeof r === 'function'));
    }) as typeof stream.write;
  }
}
