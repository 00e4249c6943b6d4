import type { LoadMessage } from '../../runtime/protocol/frames.js';
import type { LoadedFunction } from '../node/invocation.js';
import { loadHttpProcess } from './http.js';
import { loadLambdaRuntime } from './lambda-runtime.js';
import { loadStdioProcess } from './stdio.js';

/** runtime: process: a program in any language, run the way its style says (http by default, lambda-runtime without a command). */
export function loadProcess(msg: LoadMessage): Promise<LoadedFunction> | LoadedFunction {
  const style = msg.style ?? (msg.command === undefined ? 'lambda-runtime' : 'http');
  if (style === 'stdio') return loadStdioProcess(msg);
  if (style === 'lambda-runtime') return loadLambdaRuntime(msg);
  return loadHttpProcess(msg);
}
