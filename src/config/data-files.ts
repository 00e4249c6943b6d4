/**
 * Files in the data dir that the CLI reads to find a running platform. Kept apart from
 * platform.ts so that the CLI can read them without loading the platform.
 */
export const TOKEN_FILE = 'admin-token';
export const RUNTIME_FILE = 'runtime.json';

/** What runtime.json holds while a platform runs. */
export interface RuntimeInfo {
  pid: number;
  gatewayUrl: string;
  adminUrl: string;
}
