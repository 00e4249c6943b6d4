import type { FunctionRegistry } from '../control/registry.js';
import type { FunctionPool, FunctionSpec } from '../runtime/function-pool.js';
import type { Instance } from '../runtime/instance.js';
import type { RuntimeManager } from '../runtime/manager.js';
import type { RequestHead, ResponseHead } from '../runtime/protocol/frames.js';
import { NimbusError } from '../shared/errors.js';

export interface CallDeps {
  registry: FunctionRegistry;
  runtime: RuntimeManager;
  isDraining(): boolean;
}

/**
 * Takes a slot on an instance of the function. When a deploy replaces the version a
 * request was waiting for, it waits for the new version instead of failing.
 */
export async function acquireSlot(deps: CallDeps, spec: FunctionSpec, signal: AbortSignal): Promise<{ pool: FunctionPool; instance: Instance }> {
  const pool = deps.runtime.pool(spec);
  try {
    return { pool, instance: await pool.acquire(signal) };
  } catch (err) {
    const next = deps.registry.spec(spec.name);
    if (signal.aborted || deps.isDraining() || !next || next.key === spec.key || (err as NimbusError).code !== 'NIMBUS_SHUTTING_DOWN') throw err;
    const nextPool = deps.runtime.pool(next);
    return { pool: nextPool, instance: await nextPool.acquire(signal) };
  }
}

export interface BufferedResponse {
  head: ResponseHead;
  body: Buffer;
}

export interface BufferedRequest {
  head: Omit<RequestHead, 'deadline'>;
  body: Buffer;
}

/**
 * One whole invocation with the body in memory, for the compatible APIs (Lambda
 * Invoke, async delivery) that need the complete response before they answer.
 * `request` may depend on the handler style of the instance that got the slot.
 * Rejects with the NimbusError the gateway would have sent (timeouts included).
 */
export async function callFunction(
  deps: CallDeps,
  spec: FunctionSpec,
  request: BufferedRequest | ((style: string) => BufferedRequest),
): Promise<BufferedResponse> {
  const deadline = Date.now() + spec.timeoutMs;
  const waiting = new AbortController();
  let target: Instance | undefined;
  let stream = 0;
  const timer = setTimeout(() => {
    if (target) target.timeOut(stream, spec.timeoutMs);
    else waiting.abort(new NimbusError('NIMBUS_FUNCTION_TIMEOUT', `function "${spec.name}" did not start within its ${spec.timeoutMs} ms timeout`));
  }, spec.timeoutMs);
  try {
    const { pool, instance } = await acquireSlot(deps, spec, waiting.signal);
    let prepared: BufferedRequest;
    try {
      prepared = typeof request === 'function' ? request(instance.style) : request;
    } catch (err) {
      pool.release(instance);
      throw err;
    }
    const { head, body } = prepared;
    target = instance;
    return await new Promise<BufferedResponse>((resolve, reject) => {
      let responseHead: ResponseHead | undefined;
      const chunks: Buffer[] = [];
      stream = instance.invoke(
        { ...head, deadline },
        {
          head: (h) => {
            responseHead = h;
          },
          body: (chunk) => chunks.push(chunk),
          end: () => resolve({ head: responseHead ?? { status: 200, headers: [] }, body: Buffer.concat(chunks) }),
          error: reject,
        },
      );
      if (body.length > 0) instance.sendBody(stream, body);
      instance.endBody(stream);
    });
  } finally {
    clearTimeout(timer);
  }
}
