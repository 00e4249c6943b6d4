/**
 * The seccomp filter every sandboxed instance runs under (bubblewrap loads it with
 * --seccomp just before it starts the instance's program). A deny list: what a
 * function never needs and what has been used to break out of containers. Everything
 * else is allowed, so any language runtime works unchanged. docs/security.md lists it.
 *
 * The program is classic BPF over struct seccomp_data:
 *   { u32 nr; u32 arch; u64 instruction_pointer; u64 args[6] }
 * It checks the architecture first (a syscall made through another ABI, such as x32 or
 * 32-bit x86 on x86_64, would have other numbers), then each denied number in turn.
 */

/** Denied with EPERM: tracing and reading other processes, mounts, kernel interfaces, namespaces. */
const DENIED_EPERM = [
  'ptrace',
  'process_vm_readv',
  'process_vm_writev',
  'kcmp',
  'mount',
  'umount2',
  'pivot_root',
  'chroot',
  'move_mount',
  'open_tree',
  'fsopen',
  'fsconfig',
  'fsmount',
  'fspick',
  'mount_setattr',
  'bpf',
  'perf_event_open',
  'keyctl',
  'add_key',
  'request_key',
  'kexec_load',
  'kexec_file_load',
  'reboot',
  'init_module',
  'finit_module',
  'delete_module',
  'userfaultfd',
  'unshare',
  'setns',
  'swapon',
  'swapoff',
  'acct',
  'settimeofday',
  'clock_settime',
  'clock_adjtime',
  'adjtimex',
  'sethostname',
  'setdomainname',
  'iopl',
  'ioperm',
  'quotactl',
  'quotactl_fd',
  'nfsservctl',
  'lookup_dcookie',
  'syslog',
  'vhangup',
  'open_by_handle_at',
  'name_to_handle_at',
  'uselib',
  'ustat',
  'sysfs',
  '_sysctl',
  'fanotify_init',
  'get_kernel_syms',
  'query_module',
  'create_module',
] as const;

/**
 * Denied with ENOSYS, so that callers fall back as they do on older kernels: clone3
 * (its flags sit in memory a filter cannot read; glibc falls back to clone, whose flags
 * are checked) and io_uring (a large kernel surface; libuv falls back to its thread pool).
 */
const DENIED_ENOSYS = ['clone3', 'io_uring_setup', 'io_uring_enter', 'io_uring_register'] as const;

type SyscallName = (typeof DENIED_EPERM)[number] | (typeof DENIED_ENOSYS)[number] | 'clone';

/** Syscall numbers from the kernel's headers (asm/unistd_64.h; asm-generic/unistd.h for arm64). Absent: the ABI has no such call. */
const NUMBERS: Record<'x64' | 'arm64', Partial<Record<SyscallName, number>>> = {
  x64: {
    ptrace: 101,
    process_vm_readv: 310,
    process_vm_writev: 311,
    kcmp: 312,
    mount: 165,
    umount2: 166,
    pivot_root: 155,
    chroot: 161,
    move_mount: 429,
    open_tree: 428,
    fsopen: 430,
    fsconfig: 431,
    fsmount: 432,
    fspick: 433,
    mount_setattr: 442,
    bpf: 321,
    perf_event_open: 298,
    keyctl: 250,
    add_key: 248,
    request_key: 249,
    kexec_load: 246,
    kexec_file_load: 320,
    reboot: 169,
    init_module: 175,
    finit_module: 313,
    delete_module: 176,
    userfaultfd: 323,
    unshare: 272,
    setns: 308,
    swapon: 167,
    swapoff: 168,
    acct: 163,
    settimeofday: 164,
    clock_settime: 227,
    clock_adjtime: 305,
    adjtimex: 159,
    sethostname: 170,
    setdomainname: 171,
    iopl: 172,
    ioperm: 173,
    quotactl: 179,
    quotactl_fd: 443,
    nfsservctl: 180,
    lookup_dcookie: 212,
    syslog: 103,
    vhangup: 153,
    open_by_handle_at: 304,
    name_to_handle_at: 303,
    uselib: 134,
    ustat: 136,
    sysfs: 139,
    _sysctl: 156,
    fanotify_init: 300,
    get_kernel_syms: 177,
    query_module: 178,
    create_module: 174,
    clone3: 435,
    io_uring_setup: 425,
    io_uring_enter: 426,
    io_uring_register: 427,
    clone: 56,
  },
  arm64: {
    ptrace: 117,
    process_vm_readv: 270,
    process_vm_writev: 271,
    kcmp: 272,
    mount: 40,
    umount2: 39,
    pivot_root: 41,
    chroot: 51,
    move_mount: 429,
    open_tree: 428,
    fsopen: 430,
    fsconfig: 431,
    fsmount: 432,
    fspick: 433,
    mount_setattr: 442,
    bpf: 280,
    perf_event_open: 241,
    keyctl: 219,
    add_key: 217,
    request_key: 218,
    kexec_load: 104,
    kexec_file_load: 294,
    reboot: 142,
    init_module: 105,
    finit_module: 273,
    delete_module: 106,
    userfaultfd: 282,
    unshare: 97,
    setns: 268,
    swapon: 224,
    swapoff: 225,
    acct: 89,
    settimeofday: 170,
    clock_settime: 112,
    clock_adjtime: 266,
    adjtimex: 171,
    sethostname: 161,
    setdomainname: 162,
    quotactl: 60,
    quotactl_fd: 443,
    nfsservctl: 42,
    lookup_dcookie: 18,
    syslog: 116,
    vhangup: 58,
    open_by_handle_at: 265,
    name_to_handle_at: 264,
    fanotify_init: 262,
    clone3: 435,
    io_uring_setup: 425,
    io_uring_enter: 426,
    io_uring_register: 427,
    clone: 220,
  },
};

/** AUDIT_ARCH_* values: the ABI a syscall was made through. */
const AUDIT_ARCH = { x64: 0xc000003e, arm64: 0xc00000b7 } as const;
/** x32 syscalls on x86_64 carry this bit in their number. */
const X32_SYSCALL_BIT = 0x40000000;

/** clone() flags that make new namespaces: a function never needs one, and a user namespace opens kernel surface. */
const CLONE_NEW_NAMESPACES =
  0x00020000 | // CLONE_NEWNS
  0x02000000 | // CLONE_NEWCGROUP
  0x04000000 | // CLONE_NEWUTS
  0x08000000 | // CLONE_NEWIPC
  0x10000000 | // CLONE_NEWUSER
  0x20000000 | // CLONE_NEWPID
  0x40000000; // CLONE_NEWNET

const EPERM = 1;
const ENOSYS = 38;

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h) and seccomp return values (linux/seccomp.h).
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const JSET_K = 0x45;
const RET_K = 0x06;
const RET_ALLOW = 0x7fff0000;
const RET_KILL_PROCESS = 0x80000000;
const retErrno = (errno: number) => 0x00050000 | errno;

/** Offsets into struct seccomp_data. */
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
/** The low 32 bits of args[0] (little-endian: both supported ABIs are). */
const OFFSET_ARG0_LOW = 16;

interface Instruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export type SeccompArch = keyof typeof AUDIT_ARCH;

/** The architectures the filter is written for; elsewhere the sandbox cannot start (docs/security.md). */
export function seccompArch(arch: string = process.arch): SeccompArch | undefined {
  return arch === 'x64' || arch === 'arm64' ? arch : undefined;
}

/** The syscalls the filter denies, for the docs and the tests. */
export const DENIED_SYSCALLS: readonly string[] = [...DENIED_EPERM, ...DENIED_ENOSYS];

/**
 * The filter as bytes, ready for bubblewrap's --seccomp fd: an array of struct
 * sock_filter { u16 code; u8 jt; u8 jf; u32 k } in the machine's byte order.
 */
export function seccompFilter(arch: SeccompArch): Buffer {
  const numbers = NUMBERS[arch];
  const program: Instruction[] = [];
  const op = (code: number, k: number, jt = 0, jf = 0) => program.push({ code, jt, jf, k });
  // Another ABI than the one the numbers are for: stop the process.
  op(LD_W_ABS, OFFSET_ARCH);
  op(JEQ_K, AUDIT_ARCH[arch], 1, 0);
  op(RET_K, RET_KILL_PROCESS);
  op(LD_W_ABS, OFFSET_NR);
  if (arch === 'x64') {
    op(JGE_K, X32_SYSCALL_BIT, 0, 1);
    op(RET_K, retErrno(EPERM));
  }
  const deny = (names: readonly SyscallName[], errno: number) => {
    for (const name of names) {
      const nr = numbers[name];
      if (nr === undefined) continue;
      // Each test jumps only over its own return: no jump offset grows with the list.
      op(JEQ_K, nr, 0, 1);
      op(RET_K, retErrno(errno));
    }
  };
  deny(DENIED_EPERM, EPERM);
  deny(DENIED_ENOSYS, ENOSYS);
  // clone() is how threads and processes start: allowed, unless it asks for a new namespace.
  op(JEQ_K, numbers.clone as number, 0, 3);
  op(LD_W_ABS, OFFSET_ARG0_LOW);
  op(JSET_K, CLONE_NEW_NAMESPACES, 0, 1);
  op(RET_K, retErrno(EPERM));
  op(RET_K, RET_ALLOW);
  const out = Buffer.alloc(program.length * 8);
  program.forEach((ins, i) => {
    const at = i * 8;
    if (isLittleEndian) {
      out.writeUInt16LE(ins.code, at);
      out.writeUInt32LE(ins.k >>> 0, at + 4);
    } else {
      out.writeUInt16BE(ins.code, at);
      out.writeUInt32BE(ins.k >>> 0, at + 4);
    }
    out.writeUInt8(ins.jt, at + 2);
    out.writeUInt8(ins.jf, at + 3);
  });
  return out;
}

const isLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
