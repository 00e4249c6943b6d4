import type { FunctionInfo, Invocation, InvocationResult, LoadedFunction } from '../invocation.js';
import { headerPairs } from '../invocation.js';

type CloudEventHandler = (event: Record<string, unknown>) => unknown;

/**
 * Reads a CloudEvent from an HTTP request (CloudEvents HTTP binding 1.0): structured
 * mode (application/cloudevents+json) or binary mode (ce-* headers, data in the body).
 * Returns undefined when the request carries no CloudEvent.
 */
export function readCloudEvent(headers: [string, string][], body: Buffer): Record<string, unknown> | undefined {
  const map = new Map(headers);
  const type = (map.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/cloudevents+json') {
    const event = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    if (typeof event.data_base64 === 'string') {
      event.data = Buffer.from(event.data_base64, 'base64');
      delete event.data_base64;
    }
    return event;
  }
  if (!map.has('ce-specversion')) return undefined;
  const event: Record<string, unknown> = {};
  for (const [name, value] of headers) if (name.startsWith('ce-')) event[name.slice(3)] = decodeURIComponent(value);
  if (map.has('content-type')) event.datacontenttype = map.get('content-type');
  if (body.length > 0) {
    const json = type === 'application/json' || type.endsWith('+json');
    event.data = json ? JSON.parse(body.toString('utf8')) : type.startsWith('text/') ? body.toString('utf8') : body;
  }
  return event;
}

/** Cloud Functions' CloudEvent functions: `functions.cloudEvent('name', (cloudEvent) => ...)`; success is 204. */
export function loadCloudEvent(handler: CloudEventHandler, _info: FunctionInfo): LoadedFunction {
  return {
    style: 'gcf-cloudevent',
    async invoke(inv: Invocation): Promise<InvocationResult> {
      let event: Record<string, unknown> | undefined;
      try {
        event = readCloudEvent(headerPairs(inv.head.headers), await inv.readBody());
      } catch {
        event = undefined;
      }
      if (!event) {
        const text = 'the request is not a CloudEvent: send ce-* headers (binary mode) or application/cloudevents+json (structured mode)';
        return { head: { status: 400, headers: [['content-type', 'text/plain; charset=utf-8']] }, body: Buffer.from(text) };
      }
      await handler(event);
      return { head: { status: 204, headers: [] }, body: null };
    },
  };
}
