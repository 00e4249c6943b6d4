import type { Events } from '../events/events.js';
import type { Store } from '../store/store.js';
import type { LogBuffer } from '../telemetry/log-buffer.js';
import type { CallDeps } from './call.js';
import type { ByteBudget } from './lambda-auth.js';

/** What the compatible APIs (Lambda, OpenFaaS) need besides invoking: auth, records, logs. */
export interface CompatDeps extends CallDeps {
  /** The durable queue: async invokes, Lambda Event invokes, OpenFaaS /async-function. */
  events: Events;
  /** Where the admin API listens, for status URLs. */
  adminUrl(): string;
  /** The admin token: the Lambda API's secret access key and the OpenFaaS basic-auth password. */
  token: string;
  store: Store;
  logs: LogBuffer;
  /** The Lambda API's budget for bodies read before their signature can be checked. */
  lambdaBodyBudget: ByteBudget;
}
