/** Every default and limit, named with its unit. docs/manifest.md repeats them. */
export const DEFAULT_GATEWAY_PORT = 8080;
export const DEFAULT_ADMIN_PORT = 8081;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_DATA_DIR = '.nimbus';

/**
 * Open connections, per server. Each server has its own budget, so a flood of the
 * gateway never takes the admin API's connections (docs/security.md). A client is one
 * remote IP address. The gateway's total is also kept to half the process's
 * open-file limit, when that is lower.
 */
export const DEFAULT_GATEWAY_MAX_CONNECTIONS = 10_000;
export const DEFAULT_GATEWAY_MAX_CONNECTIONS_PER_CLIENT = 256;
export const GATEWAY_MAX_SHARE_OF_FD_LIMIT = 0.5;
export const DEFAULT_ADMIN_MAX_CONNECTIONS = 128;
export const DEFAULT_ADMIN_MAX_CONNECTIONS_PER_CLIENT = 64;
export const MAX_CONNECTIONS_LIMIT = 1_000_000;
/** A connection must deliver a request's headers this soon after it opens or goes idle between requests (slowloris). */
export const HTTP_HEADERS_TIMEOUT_MS = 10_000;
/** How often Node looks for connections past headersTimeout (its default, 30 s, would let them live 40 s). */
export const HTTP_CONNECTIONS_CHECK_INTERVAL_MS = 1_000;
/** Gateway keep-alive: longer than the 60 s idle timeout of common load balancers, so they never reuse a connection the gateway is closing. */
export const GATEWAY_KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** Admin keep-alive: Node's default; the CLI makes one or two requests per command. */
export const ADMIN_KEEP_ALIVE_TIMEOUT_MS = 5_000;

export const DEFAULT_MEMORY_MB = 256;
export const MIN_MEMORY_MB = 128;
export const MAX_MEMORY_MB = 10_240;
export const DEFAULT_TIMEOUT_MS = 30_000;
export const MAX_TIMEOUT_MS = 900_000;
export const DEFAULT_SCALE_MIN = 0;
export const DEFAULT_SCALE_MAX = 10;
export const DEFAULT_CONCURRENCY = 8;
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** The autoscaler's stable window (Knative's default); its panic window is a tenth of it. */
export const DEFAULT_SCALE_WINDOW_MS = 60_000;
export const MIN_SCALE_WINDOW_MS = 6_000;
export const MAX_SCALE_WINDOW_MS = 3_600_000;
/** The autoscaler aims for this share of scale.concurrency per instance. */
export const DEFAULT_UTILIZATION_PERCENT = 70;
/** How often the autoscaler decides for the functions that have traffic. */
export const AUTOSCALER_TICK_MS = 1_000;
/** Instances (of every function) the platform runs at most; idle ones make room for busy ones. */
export const DEFAULT_MAX_INSTANCES = 200;
export const MAX_ENV_BYTES = 4_096;
/** Secrets (docs/security.md): a value at most 5 KiB (as Cloudflare's), at most this many per function. */
export const MAX_SECRET_VALUE_BYTES = 5_120;
export const MAX_SECRETS_PER_FUNCTION = 64;
export const MAX_SECRET_NAME_LENGTH = 256;

export const MAX_REQUEST_BODY_BYTES = 6 * 1024 * 1024;
export const MAX_BUNDLE_BYTES = 50 * 1024 * 1024;
export const MAX_BUNDLE_UNPACKED_BYTES = 250 * 1024 * 1024;
export const MAX_BUNDLE_FILES = 10_000;
/** Lambda API CreateFunction: a MAX_BUNDLE_BYTES zip, base64-encoded inside its JSON request. */
export const MAX_LAMBDA_CREATE_BODY_BYTES = Math.ceil((MAX_BUNDLE_BYTES * 4) / 3) + 64 * 1024;
/** Lambda API calls that carry no payload (list, get, delete). */
export const MAX_LAMBDA_OTHER_BODY_BYTES = 64 * 1024;
/**
 * Lambda API: request bodies held at once, over all requests, whose signature can only
 * be checked after they arrive (no signed X-Amz-Content-Sha256). Two CreateFunction
 * uploads fit; an unauthenticated flood cannot grow the platform past it.
 */
export const LAMBDA_UNVERIFIED_BODY_BUDGET_BYTES = 2 * MAX_LAMBDA_CREATE_BODY_BYTES;

/** Requests that may wait for a busy function before new ones get 429. */
export const MAX_QUEUED_REQUESTS_PER_FUNCTION = 1_000;
export const RETRY_AFTER_S = 1;
/** Pre-started generic Node shims kept ready for the default memory size. */
export const DEFAULT_WARM_POOL_SIZE = 2;
/** The most pre-started generic instances the warm pool grows to under a burst of cold starts. */
export const WARM_POOL_MAX_SIZE = 8;
/** Wait after taking a pre-started instance before starting its replacement. */
export const WARM_POOL_REFILL_DELAY_MS = 100;
export const INSTANCE_START_TIMEOUT_MS = 10_000;
/** How long a runtime: process program may take to become ready (listen on $PORT, or ask the Runtime API for work). */
export const PROCESS_READY_TIMEOUT_MS = 10_000;
export const INSTANCE_STOP_GRACE_MS = 2_000;
export const MEMORY_CHECK_INTERVAL_MS = 250;
/** Share of `memory` a V8 heap's old generation may use (process and thread instances alike), and its floor. */
export const HEAP_SHARE_OF_MEMORY = 0.8;
export const MIN_HEAP_MB = 64;
/** Thread isolation: the worker's young generation gets this share of `memory`, within these bounds (48 MB is V8's own default). */
export const THREAD_YOUNG_GENERATION_SHARE = 0.1;
export const MIN_THREAD_YOUNG_GENERATION_MB = 8;
export const MAX_THREAD_YOUNG_GENERATION_MB = 48;
/** Thread isolation: the worker's stack (Node's default). */
export const THREAD_STACK_MB = 4;
/** How often a thread instance reports its heap and external memory for the watchdog. */
export const THREAD_MEMORY_REPORT_INTERVAL_MS = 100;
export const SHUTDOWN_DRAIN_TIMEOUT_MS = 30_000;

export const LOG_FLUSH_INTERVAL_MS = 100;
export const LOG_RETENTION_LINES_PER_FUNCTION = 10_000;
export const MAX_LOG_LINE_BYTES = 16_384;

/** Asynchronous events: the durable queue and its delivery (docs/events.md). */
export const DEFAULT_RETRIES = 2;
export const MAX_RETRIES = 10;
export const DEFAULT_MAX_EVENT_AGE_MS = 6 * 3_600_000;
export const MIN_EVENT_AGE_MS = 60_000;
export const MAX_EVENT_AGE_MS = 6 * 3_600_000;
/** First retry after about this long; each further retry waits twice as long, with jitter, up to the cap. */
export const RETRY_BASE_DELAY_MS = 1_000;
export const RETRY_MAX_DELAY_MS = 5 * 60_000;
export const MAX_ASYNC_BODY_BYTES = 1024 * 1024;
/** Events waiting or running, platform-wide, before async invokes get 429. */
export const MAX_QUEUED_EVENTS = 100_000;
/** An Idempotency-Key seen again within this window returns the first invocation. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3_600_000;
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
/** Finished invocation records are kept this long for GET /v1/invocations/<id>. */
export const INVOCATION_RETENTION_MS = 24 * 3_600_000;
/** Dead letters are kept this long (SQS's maximum) unless redriven or purged. */
export const DEAD_LETTER_RETENTION_MS = 14 * 24 * 3_600_000;
/** Deliveries running at once, across all functions. */
export const MAX_DELIVERIES_IN_FLIGHT = 256;
/** Result bodies kept for an invocation record and sent to callbacks. */
export const MAX_RESULT_BYTES = 1024 * 1024;
/** A callback URL that keeps failing is tried this many times in all. */
export const CALLBACK_ATTEMPTS = 5;
export const CALLBACK_TIMEOUT_MS = 10_000;
/** A callback still failing this long after the invocation finished goes to the dead letters. */
export const CALLBACK_MAX_AGE_MS = 3_600_000;

// Triggers (schedules, topics, buckets) and bindings.
export const MAX_TRIGGERS_PER_KIND = 10;
export const DEFAULT_TOPIC_BATCH_SIZE = 10;
export const MAX_TOPIC_BATCH_SIZE = 100;
/** A topic message, like an async invocation, is at most this large. */
export const MAX_TOPIC_MESSAGE_BYTES = 1024 * 1024;
/** Messages one publish (or sendBatch) may carry. */
export const MAX_PUBLISH_BATCH = 100;
/** A batch publish's JSON body, all messages together (base64 bodies count as encoded). */
export const MAX_PUBLISH_BATCH_JSON_BYTES = 10 * 1024 * 1024;
/** How often the scheduler looks at least (it also wakes for the next due tick). */
export const SCHEDULER_MAX_SLEEP_MS = 60_000;
/**
 * The whole environment an instance starts with (process or thread): none of the
 * platform's own variables (NODE_OPTIONS, NODE_EXTRA_CA_CERTS, secrets). LOAD adds the
 * function's and the documented ones (docs/runtime.md).
 */
export const INSTANCE_START_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: '/usr/local/bin:/usr/bin:/bin',
  LANG: 'C.UTF-8',
  TZ: 'UTC',
  HOME: '/tmp',
});

// The sandbox every process instance runs in (docs/security.md).
/** A function's private /tmp (a tmpfs; its pages count toward the function's memory), and the manifest's bounds. */
export const DEFAULT_TMP_MB = 64;
export const MIN_TMP_MB = 1;
export const MAX_TMP_MB = 10_240;
/** Processes and threads an instance may have at once (a Node instance uses about a dozen threads). */
export const DEFAULT_PIDS = 64;
export const MIN_PIDS = 16;
export const MAX_PIDS = 4_096;
/** Ranges a manifest's network.allow may list. */
export const MAX_NETWORK_ALLOW = 32;
/** Open files per process of an instance (RLIMIT_NOFILE). */
export const SANDBOX_OPEN_FILES = 1_024;
/**
 * First host uid of the sandboxes' users when the platform runs as root: each instance
 * gets its own uid above it, one no account on the host uses, so per-user kernel limits
 * (pipe buffers, inotify) are not shared between instances either.
 */
export const SANDBOX_UID_BASE = 1_900_000_000;
export const SANDBOX_UID_RANGE = 1_000_000;
/** The uid and gid a function sees itself as, inside its sandbox, when the platform is not root (one user namespace maps it). */
export const SANDBOX_ROOTLESS_ID = 1_000;
/** How long the platform waits for a sandbox's network (slirp4netns) to come up. */
export const SANDBOX_NETWORK_TIMEOUT_MS = 5_000;
/** Log output one request may write before the rest of it is dropped (a marker line says so). */
export const MAX_LOG_BYTES_PER_REQUEST = 1024 * 1024;
/** Log output an instance may write outside any request per minute, likewise. */
export const MAX_LOG_BYTES_UNTAGGED_PER_MINUTE = 1024 * 1024;
