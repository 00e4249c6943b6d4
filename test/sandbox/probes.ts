/**
 * What a hostile function tries, written once in Python (the python runtime runs it as
 * a Lambda handler, runtime: process as a stdio program) and once in JavaScript (the
 * node runtime). Each attempt answers "refused: <errno>" or what it got: the tests
 * assert every attack is refused, and that the controls (its own bundle, its own /tmp)
 * work, so a probe that could not run at all is not taken for a refusal.
 */

/** Attempts by name; `params` carries what the test knows of the host (paths, pids, ports). */
export const PYTHON_PROBE = String.raw`
import ctypes, errno, json, os, signal, socket, subprocess, sys, time

def refused(e):
    if isinstance(e, OSError) and e.errno is not None:
        return "refused: " + errno.errorcode.get(e.errno, str(e.errno))
    return "refused: " + type(e).__name__

def attempt(fn):
    try:
        out = fn()
        return "ALLOWED" if out is None else out
    except Exception as e:  # noqa: BLE001
        return refused(e)

libc = ctypes.CDLL(None, use_errno=True)

def syscall(nr, *args):
    r = libc.syscall(nr, *args)
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return "ALLOWED"

NR = {"x86_64": {"unshare": 272, "keyctl": 250, "ptrace": 101, "bpf": 321, "mount": 165},
      "aarch64": {"unshare": 97, "keyctl": 219, "ptrace": 117, "bpf": 280, "mount": 40}}[os.uname().machine]

def read(path):
    with open(path, "rb") as f:
        f.read(16)
    return "ALLOWED"

def write(path):
    with open(path, "w") as f:
        f.write("owned")
    return "ALLOWED"

def connect(host, port):
    s = socket.create_connection((host, port), timeout=2)
    data = s.recv(16)
    s.close()
    return "ALLOWED: " + data.decode().strip()

def status():
    fields = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("Uid", "CapEff", "CapBnd", "NoNewPrivs", "Seccomp"):
            fields[k] = v.split()[0]
    return fields

def fork_bomb():
    kids = []
    try:
        for _ in range(5000):
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            kids.append(pid)
        return "ALLOWED: %d" % len(kids)
    except OSError as e:
        return "refused: %s after %d" % (errno.errorcode.get(e.errno), len(kids))
    finally:
        for k in kids:
            os.kill(k, signal.SIGKILL)
            os.waitpid(k, 0)

def open_files():
    fds = []
    try:
        for _ in range(100000):
            fds.append(os.open("/dev/null", os.O_RDONLY))
        return "ALLOWED: %d" % len(fds)
    except OSError as e:
        return "refused: %s after %d" % (errno.errorcode.get(e.errno), len(fds))
    finally:
        for fd in fds:
            os.close(fd)

def fill_tmp():
    written = 0
    try:
        with open("/tmp/fill", "wb") as f:
            for _ in range(4096):
                f.write(b"x" * (1 << 20))
                f.flush()
                written += 1
        return "ALLOWED: %d MB" % written
    except OSError as e:
        return "refused: %s after %d MB" % (errno.errorcode.get(e.errno), written)
    finally:
        try:
            os.unlink("/tmp/fill")
        except OSError:
            pass

def hog_memory(mb):
    # A child process, as a program of runtime: process would start: the limit holds for the whole tree.
    code = "b = []\nfor i in range(%d): b.append(bytearray(1 << 20))\nprint('survived')" % mb
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    return "ALLOWED" if p.returncode == 0 else "refused: exit %s" % p.returncode

def daemon(marker):
    # setsid and double fork: the classic way out of a process group.
    subprocess.Popen([sys.executable, "-c", "import os, time\nif os.fork(): os._exit(0)\ntime.sleep(600)", marker], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return "started"

def tmp_marker(value):
    path = "/tmp/marker"
    before = open(path).read() if os.path.exists(path) else ""
    with open(path, "w") as f:
        f.write(value)
    return before

PROBES = {
    "own-bundle": lambda p: read(p["ownFile"]),
    "write-tmp": lambda p: write("/tmp/probe"),
    "read-token": lambda p: read(p["tokenFile"]),
    "read-db": lambda p: read(p["dbFile"]),
    "read-other-bundle": lambda p: read(p["otherBundleFile"]),
    "list-data-dir": lambda p: str(os.listdir(p["dataDir"])),
    "read-host-home": lambda p: str(os.listdir("/root")),
    "write-own-bundle": lambda p: write(p["ownFile"]),
    "write-etc": lambda p: write("/etc/passwd"),
    "write-usr": lambda p: write("/usr/bin/evil"),
    "passwd": lambda p: open("/etc/passwd").read(),
    "visible-pids": lambda p: sorted(int(d) for d in os.listdir("/proc") if d.isdigit()),
    "kill-platform": lambda p: os.kill(p["platformPid"], signal.SIGKILL),
    "status": lambda p: status(),
    "unshare-userns": lambda p: syscall(NR["unshare"], 0x10000000),
    "keyctl": lambda p: syscall(NR["keyctl"], 0, -3, 0),
    "ptrace": lambda p: syscall(NR["ptrace"], 16, p["platformPid"], 0, 0),
    "bpf": lambda p: syscall(NR["bpf"], 0, 0, 0),
    "mount": lambda p: syscall(NR["mount"], None, b"/tmp", b"tmpfs", 0, None),
    "connect-host-loopback": lambda p: connect("127.0.0.1", p["loopbackPort"]),
    "connect-private": lambda p: connect(p["privateHost"], p["privatePort"]),
    "connect-other-instance": lambda p: connect("127.0.0.1", p["otherPort"]),
    "fork-bomb": lambda p: fork_bomb(),
    "open-files": lambda p: open_files(),
    "fill-tmp": lambda p: fill_tmp(),
    "hog-memory": lambda p: hog_memory(p.get("hogMB", 1600)),
    "daemon": lambda p: daemon(p["marker"]),
    "tmp-marker": lambda p: tmp_marker(p["marker"]),
    "env": lambda p: {k: v for k, v in os.environ.items() if k.startswith("NIMBUS_STATE") or k == "AWS_LAMBDA_RUNTIME_API"},
}

def run(request):
    params = request.get("params", {})
    return {name: attempt(lambda: PROBES[name](params)) for name in request["probes"]}

def handler(event, context):
    # Through the gateway the request arrives as an API Gateway event with the JSON as its body.
    return run(json.loads(event["body"]) if "body" in event else event)

if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.stdin.read()))))
`;

/** The same attempts where JavaScript can make them (the node runtime: Node's permission model is a further layer there). */
export const NODE_PROBE = `
import fs from 'node:fs';
import net from 'node:net';

const refused = (e) => 'refused: ' + (e.code ?? e.name);
const read = (p) => { fs.readFileSync(p); return 'ALLOWED'; };
const connect = (host, port) => new Promise((resolve) => {
  const s = net.connect({ host, port, timeout: 2000 });
  s.once('data', (d) => { resolve('ALLOWED: ' + String(d).trim()); s.destroy(); });
  s.once('error', (e) => resolve(refused(e)));
  s.once('timeout', () => { resolve('refused: timeout'); s.destroy(); });
});
const PROBES = {
  'own-bundle': (p) => read(p.ownFile),
  'write-tmp': () => { fs.writeFileSync('/tmp/probe', 'x'); return 'ALLOWED'; },
  'read-token': (p) => read(p.tokenFile),
  'read-db': (p) => read(p.dbFile),
  'read-other-bundle': (p) => read(p.otherBundleFile),
  'write-own-bundle': (p) => { fs.writeFileSync(p.ownFile, 'owned'); return 'ALLOWED'; },
  'kill-platform': (p) => { process.kill(p.platformPid, 'SIGKILL'); return 'ALLOWED'; },
  'spawn': async () => { (await import('node:child_process')).execSync('id'); return 'ALLOWED'; },
  'connect-host-loopback': (p) => connect('127.0.0.1', p.loopbackPort),
  'connect-private': (p) => connect(p.privateHost, p.privatePort),
  'pid': () => process.pid,
  'uid': () => process.getuid(),
};

export default {
  async fetch(request) {
    const { probes, params = {} } = await request.json();
    const out = {};
    for (const name of probes) {
      try { const r = await PROBES[name](params); out[name] = r === undefined ? 'ALLOWED' : r; } catch (e) { out[name] = refused(e); }
    }
    return Response.json(out);
  },
};
`;
