/**
 * What `require('@fnproject/fdk')` resolves to in a bundle built by `nimbus deploy`:
 * fdk.handle(fn) records the function where the Node shim finds it.
 */
export type FdkFunction = (input: unknown, ctx: unknown) => unknown;

export const REGISTRY = Symbol.for('nimbus.fnproject-fdk');

export function handle(fn: FdkFunction, options: { inputMode?: 'json' | 'string' | 'buffer' } = {}): void {
  (globalThis as { [REGISTRY]?: { fn: FdkFunction; inputMode: string } })[REGISTRY] = { fn, inputMode: options.inputMode ?? 'json' };
}

export default { handle };
