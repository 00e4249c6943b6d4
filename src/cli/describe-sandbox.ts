/** What GET /v1/info says of the sandbox (docs/security.md#what-the-platform-reports). */
export interface SandboxView {
  kind: 'bubblewrap' | 'none';
  reason?: string;
  users: 'per-instance' | 'user-namespace' | 'platform';
  limits: 'cgroup' | 'rlimit';
  network: 'slirp4netns' | 'host' | 'none';
  seccomp: boolean;
}

/** One line on what isolates functions here; plain about what is missing. */
export function describeSandbox(s: SandboxView): string {
  if (s.kind === 'none') return `NONE: functions run as plain processes with the platform's rights (${s.reason})`;
  const what = [
    s.users === 'per-instance' ? 'a user per instance' : 'a user namespace',
    s.limits === 'cgroup' ? 'cgroup limits' : 'per-process limits',
    s.network === 'slirp4netns' ? 'outbound network via slirp4netns' : s.network === 'host' ? "the host's network" : 'no outbound network',
    'seccomp',
  ];
  return `bubblewrap (${what.join(', ')})${s.reason ? `; weaker here: ${s.reason}` : ''}`;
}
