/** What one function's instances get, set when a sandboxed instance is specialised for it (sandbox-host.ts). */
export interface SandboxGrant {
  /** The unpacked bundle on the host. */
  bundleDir: string;
  memoryMB: number;
  pids: number;
  network: NetworkPolicy;
}

/** What a function may reach over the network (the manifest's `network`, docs/security.md#network). */
export interface NetworkPolicy {
  outbound: boolean;
  /** IPv4 ranges (CIDR) reachable although blocked by default. */
  allow: readonly string[];
}
