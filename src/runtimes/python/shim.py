"""The Python shim: the program every Python instance runs.

Speaks the same framed protocol as the Node shim on fd 3 (a Unix socketpair):
READY, then LOAD (import the function), then REQ_* streams in and RES_* streams out.
Each request runs on its own thread, so an instance serves several at once.
Standard library only.
"""
import base64
import importlib
import inspect
import io
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from urllib.parse import parse_qsl

READY, LOAD, LOADED, LOAD_ERROR = 1, 2, 3, 4
REQ_HEAD, REQ_BODY, REQ_END, CANCEL, PAUSE, RESUME = 10, 11, 12, 13, 14, 15
RES_HEAD, RES_BODY, RES_END, RES_ERROR, DONE = 20, 21, 22, 23, 24
TUNNEL_OPEN, TUNNEL_DATA, TUNNEL_END, TUNNEL_PAUSE, TUNNEL_RESUME = 30, 31, 32, 33, 34
TUNNEL_BIT = 0x80000000
HEADER = struct.Struct(">IBI")
MAX_CHUNK = 256 * 1024

sock = socket.socket(fileno=3)
send_lock = threading.Lock()
local = threading.local()


def send(kind, stream, payload=b""):
    with send_lock:
        sock.sendall(HEADER.pack(5 + len(payload), kind, stream) + payload)


def send_json(kind, stream, value):
    send(kind, stream, json.dumps(value).encode())


class TaggedStream(io.TextIOBase):
    """Starts each line written while handling a request with RS <request id> US."""

    def __init__(self, raw):
        self.raw = raw
        self.at_line_start = True
        self.lock = threading.Lock()

    def write(self, text):
        rid = getattr(local, "rid", None)
        with self.lock:
            if rid:
                mark = "\x1e" + rid + "\x1f"
                out = (mark if self.at_line_start else "") + text
                out = out[:-1].replace("\n", "\n" + mark) + out[-1:] if out else out
            else:
                out = text
            if text:
                self.at_line_start = text.endswith("\n")
            self.raw.write(out)
            self.raw.flush()
        return len(text)

    def flush(self):
        self.raw.flush()


sys.stdout = TaggedStream(sys.__stdout__)
sys.stderr = TaggedStream(sys.__stderr__)


class ShimError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- loading

fn = None


class Tunnel:
    """One local connection to the state API, relayed over the channel (TUNNEL_* frames)."""

    def __init__(self, conn, stream):
        self.conn = conn
        self.stream = stream
        self.gate = threading.Event()  # cleared while the platform asks us to pause
        self.gate.set()
        self.local_done = False
        self.remote_done = False

    def pump(self):
        try:
            while True:
                self.gate.wait()
                data = self.conn.recv(MAX_CHUNK)
                if not data:
                    break
                send(TUNNEL_DATA, self.stream, data)
        except OSError:
            pass
        self.local_done = True
        send(TUNNEL_END, self.stream)
        self.finish()

    def finish(self):
        if self.local_done and self.remote_done:
            tunnels.pop(self.stream, None)
            try:
                self.conn.close()
            except OSError:
                pass


tunnels = {}
relay_port = None


def start_relay():
    """Listens on 127.0.0.1 inside the sandbox; each connection reaches the platform over fd 3."""
    global relay_port
    if relay_port is not None:
        return relay_port
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    relay_port = server.getsockname()[1]

    def accept_loop():
        n = 0
        while True:
            conn, _ = server.accept()
            n += 1
            stream = TUNNEL_BIT | n
            tunnel = Tunnel(conn, stream)
            tunnels[stream] = tunnel
            send(TUNNEL_OPEN, stream)
            threading.Thread(target=tunnel.pump, daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return relay_port


def on_tunnel_frame(kind, stream, payload):
    tunnel = tunnels.get(stream)
    if tunnel is None:
        return
    if kind == TUNNEL_DATA:
        try:
            tunnel.conn.sendall(payload)
        except OSError:
            pass
    elif kind == TUNNEL_END:
        tunnel.remote_done = True
        try:
            tunnel.conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        tunnel.finish()
    elif kind == TUNNEL_PAUSE:
        tunnel.gate.clear()
    elif kind == TUNNEL_RESUME:
        tunnel.gate.set()


def load(msg):
    global fn
    for key in list(os.environ):
        del os.environ[key]
    os.environ.update(
        {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "HOME": "/tmp",
            "NIMBUS_FUNCTION_NAME": msg["functionName"],
            "NIMBUS_FUNCTION_VERSION": str(msg["version"]),
            "NIMBUS_FUNCTION_MEMORY_MB": str(msg["memoryMB"]),
            "NIMBUS_FUNCTION_TIMEOUT_MS": str(msg["timeoutMs"]),
            "AWS_LAMBDA_FUNCTION_NAME": msg["functionName"],
            "AWS_LAMBDA_FUNCTION_VERSION": str(msg["version"]),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(msg["memoryMB"]),
        }
    )
    os.environ.update(msg.get("env") or {})
    # A function with bindings reaches the platform's state API through its own channel.
    if os.environ.get("NIMBUS_STATE_TOKEN"):
        os.environ["NIMBUS_STATE_URL"] = "http://127.0.0.1:%d" % start_relay()
    code_dir = msg["codeDir"]
    sys.path.insert(0, code_dir)
    module_name = msg["entry"][:-3].replace("/", ".")
    module = importlib.import_module(module_name)
    fn = pick(module, msg.get("exportName"), msg.get("style"), msg)


def pick(module, export_name, style, msg):
    def get(*names):
        for name in names:
            value = getattr(module, name, None)
            if callable(value):
                return name, value
        return None, None

    exported = list(vars(module))
    if style is None:
        style, name, target = detect(module, export_name)
    else:
        defaults = {"lambda": ("lambda_handler", "handler"), "openfaas": ("handle",), "openfaas-classic": ("handle",), "wsgi": ("app", "application")}
        name, target = get(export_name) if export_name else get(*defaults.get(style, ()))
    if target is None:
        raise ShimError(
            "NIMBUS_HANDLER_NOT_FOUND",
            "no handler found for style %s%s (the module defines: %s)"
            % (style or "(detected)", " named " + export_name if export_name else "", ", ".join(n for n in exported if not n.startswith("__"))),
        )
    if style == "lambda":
        return LambdaStyle(target, msg)
    if style == "openfaas":
        return OpenFaasStyle(target)
    if style == "openfaas-classic":
        return ClassicStyle(target)
    return WsgiStyle(target)


def arity(target):
    try:
        return len([p for p in inspect.signature(target).parameters.values() if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])
    except (TypeError, ValueError):
        return -1


def detect(module, export_name):
    """Lambda for handler/lambda_handler, OpenFaaS for handle (classic with one argument), WSGI for app."""
    candidates = [export_name] if export_name else ["lambda_handler", "handler", "handle", "app", "application"]
    for name in candidates:
        target = getattr(module, name, None)
        if not callable(target):
            continue
        if name in ("app", "application") or (not inspect.isfunction(target) and hasattr(target, "wsgi_app")):
            return "wsgi", name, target
        if name == "handle":
            return ("openfaas-classic" if arity(target) == 1 else "openfaas"), name, target
        return "lambda", name, target
    return None, None, None


# ---------------------------------------------------------------- requests


class Request:
    def __init__(self, stream, head):
        self.stream = stream
        self.head = head
        self.chunks = []
        self.cancelled = False

    @property
    def body(self):
        return b"".join(self.chunks)

    def header_pairs(self):
        raw = self.head["headers"]
        return [(raw[i].lower(), raw[i + 1]) for i in range(0, len(raw), 2)]

    def headers(self):
        out = {}
        for name, value in self.header_pairs():
            out[name] = out[name] + "," + value if name in out else value
        return out

    def split_path(self):
        path = self.head["path"]
        if "?" in path:
            p, q = path.split("?", 1)
            return p, q
        return path, ""


TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "application/x-www-form-urlencoded")


def is_text(content_type):
    ct = (content_type or "").lower()
    return ct.startswith(TEXT_TYPES) or ct.endswith("+json") or ct.endswith("+xml")


def to_bytes(value):
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value).encode()


class LambdaStyle:
    style = "lambda"

    def __init__(self, target, msg):
        self.target = target
        self.msg = msg
        self.v1 = msg.get("payloadFormat") == "1.0"

    def __call__(self, req):
        context = LambdaContext(req, self.msg)
        if req.head.get("event"):
            # A direct invocation (the Lambda Invoke API): the body is the event itself.
            body = req.body
            result = self.target(json.loads(body) if body else {}, context)
            return 200, [("content-type", "application/json")], json.dumps(result).encode()
        event = self.event_v1(req) if self.v1 else self.event_v2(req)
        result = self.target(event, context)
        return lambda_result(result, self.v1)

    def event_v2(self, req):
        path, query = req.split_path()
        headers, cookies = {}, []
        for name, value in req.header_pairs():
            if name == "cookie":
                cookies += [c.strip() for c in value.split(";") if c.strip()]
                continue
            headers[name] = headers[name] + "," + value if name in headers else value
        now = datetime.now(timezone.utc)
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": headers,
            "requestContext": {
                "accountId": "anonymous",
                "apiId": "nimbus",
                "domainName": headers.get("host", "localhost"),
                "http": {"method": req.head["method"], "path": path, "protocol": req.head["protocol"], "sourceIp": req.head["sourceIp"], "userAgent": headers.get("user-agent", "")},
                "requestId": req.head["requestId"],
                "routeKey": "$default",
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
            },
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            params = {}
            for k, v in parse_qsl(query, keep_blank_values=True):
                params[k] = params[k] + "," + v if k in params else v
            event["queryStringParameters"] = params
        self.add_body(event, req, headers.get("content-type"))
        return event

    def event_v1(self, req):
        path, query = req.split_path()
        headers, multi = {}, {}
        for name, value in req.header_pairs():
            headers[name] = value
            multi.setdefault(name, []).append(value)
        q, mq = {}, {}
        for k, v in parse_qsl(query, keep_blank_values=True):
            q[k] = v
            mq.setdefault(k, []).append(v)
        event = {
            "resource": "/{proxy+}",
            "path": path,
            "httpMethod": req.head["method"],
            "headers": headers or None,
            "multiValueHeaders": multi or None,
            "queryStringParameters": q or None,
            "multiValueQueryStringParameters": mq or None,
            "pathParameters": {"proxy": path[1:]} if path != "/" else None,
            "stageVariables": None,
            "requestContext": {"requestId": req.head["requestId"], "httpMethod": req.head["method"], "path": path, "identity": {"sourceIp": req.head["sourceIp"]}},
            "body": None,
            "isBase64Encoded": False,
        }
        self.add_body(event, req, headers.get("content-type"))
        return event

    @staticmethod
    def add_body(event, req, content_type):
        body = req.body
        if body:
            text = is_text(content_type)
            event["body"] = body.decode("utf-8", "replace") if text else base64.b64encode(body).decode()
            event["isBase64Encoded"] = not text


class LambdaContext:
    def __init__(self, req, msg):
        self.aws_request_id = req.head["requestId"]
        self.function_name = msg["functionName"]
        self.function_version = str(msg["version"])
        self.memory_limit_in_mb = str(msg["memoryMB"])
        self.invoked_function_arn = "arn:aws:lambda:local:000000000000:function:" + msg["functionName"]
        self.log_group_name = "/nimbus/" + msg["functionName"]
        self.log_stream_name = "%s/%d" % (msg["version"], os.getpid())
        self._deadline = req.head["deadline"]

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline - time.time() * 1000))


def lambda_result(result, v1):
    if isinstance(result, dict) and "statusCode" in result:
        headers = [(k.lower(), str(v)) for k, v in (result.get("headers") or {}).items()]
        for k, values in (result.get("multiValueHeaders") or {}).items():
            headers += [(k.lower(), str(v)) for v in values]
        headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
        body = result.get("body")
        if body is not None and not isinstance(body, str):
            body = json.dumps(body)
        data = base64.b64decode(body) if body is not None and result.get("isBase64Encoded") else to_bytes(body)
        return int(result["statusCode"]), headers, data
    if v1:
        raise ShimError("NIMBUS_INVALID_RESPONSE", "with payloadFormat 1.0 the handler must return a dict with statusCode")
    text = result if isinstance(result, str) else json.dumps(result)
    return 200, [("content-type", "application/json")], text.encode()


class OpenFaasEvent:
    def __init__(self, req):
        path, query = req.split_path()
        self.body = req.body
        self.headers = req.headers()
        self.method = req.head["method"]
        self.query = dict(parse_qsl(query, keep_blank_values=True))
        self.path = path


class OpenFaasContext:
    def __init__(self):
        self.hostname = socket.gethostname()


class OpenFaasStyle:
    """The python3-http template: handle(event, context) -> {statusCode, body, headers}."""

    style = "openfaas"

    def __init__(self, target):
        self.target = target

    def __call__(self, req):
        res = self.target(OpenFaasEvent(req), OpenFaasContext())
        if res is None:
            return 200, [("content-type", "text/html; charset=utf-8")], b""
        if not isinstance(res, dict):
            return 200, [("content-type", "text/html; charset=utf-8")], to_bytes(res)
        headers = [(str(k).lower(), str(v)) for k, v in (res.get("headers") or {}).items()]
        body = res.get("body", "")
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            if not any(k == "content-type" for k, _ in headers):
                headers.append(("content-type", "application/json"))
        if not any(k == "content-type" for k, _ in headers):
            headers.append(("content-type", "text/html; charset=utf-8"))
        return int(res.get("statusCode", 200)), headers, to_bytes(body)


class ClassicStyle:
    """The classic python3 template: handle(req) gets the body as a string; its return value is the response."""

    style = "openfaas-classic"

    def __init__(self, target):
        self.target = target

    def __call__(self, req):
        out = self.target(req.body.decode("utf-8", "replace"))
        return 200, [("content-type", "text/plain; charset=utf-8")], to_bytes(out)


class WsgiStyle:
    """PEP 3333: app(environ, start_response), e.g. a Flask or Django application."""

    style = "wsgi"

    def __init__(self, app):
        self.app = app

    def __call__(self, req):
        path, query = req.split_path()
        body = req.body
        headers = req.headers()
        host = headers.get("host", "localhost")
        environ = {
            "REQUEST_METHOD": req.head["method"],
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": host.split(":")[0],
            "SERVER_PORT": host.split(":")[1] if ":" in host else "80",
            "SERVER_PROTOCOL": req.head["protocol"],
            "REMOTE_ADDR": req.head["sourceIp"],
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if "content-type" in headers:
            environ["CONTENT_TYPE"] = headers["content-type"]
        for name, value in headers.items():
            if name not in ("content-type", "content-length"):
                environ["HTTP_" + name.upper().replace("-", "_")] = value
        started = {}

        def start_response(status, response_headers, exc_info=None):
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = [(k.lower(), v) for k, v in response_headers]
            return lambda data: started.setdefault("written", []).append(data)

        result = self.app(environ, start_response)
        try:
            data = b"".join(started.get("written", [])) + b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return started.get("status", 500), started.get("headers", []), data


def run(req):
    local.rid = req.head["requestId"]
    try:
        if fn is None:
            raise ShimError("NIMBUS_LOAD_FAILED", "no function loaded")
        status, headers, data = fn(req)
        if not req.cancelled:
            send_json(RES_HEAD, req.stream, {"status": status, "headers": [[k, v] for k, v in headers]})
            for off in range(0, len(data), MAX_CHUNK):
                send(RES_BODY, req.stream, data[off : off + MAX_CHUNK])
            send(RES_END, req.stream)
    except BaseException as err:  # noqa: BLE001 - a function's failure is reported, never fatal
        traceback.print_exc()
        code = err.code if isinstance(err, ShimError) else "NIMBUS_FUNCTION_ERROR"
        if not req.cancelled:
            send_json(RES_ERROR, req.stream, {"code": code, "message": str(err), "errorType": type(err).__name__, "stack": traceback.format_exc()})
        if isinstance(err, SystemExit):
            os._exit(err.code if isinstance(err.code, int) else 1)
    finally:
        local.rid = None
        requests.pop(req.stream, None)
        send(DONE, req.stream)
        if draining and not requests:
            os._exit(0)


requests = {}


def on_frame(kind, stream, payload):
    if stream & TUNNEL_BIT:
        on_tunnel_frame(kind, stream, payload)
    elif kind == LOAD:
        msg = json.loads(payload)
        try:
            load(msg)
            send_json(LOADED, 0, {"style": fn.style})
        except BaseException as err:  # noqa: BLE001
            print("Function failed to load: " + "".join(traceback.format_exception(err)), file=sys.stderr)
            code = err.code if isinstance(err, ShimError) else "NIMBUS_LOAD_FAILED"
            send_json(LOAD_ERROR, 0, {"code": code, "message": "%s: %s" % (type(err).__name__, err)})
    elif kind == REQ_HEAD:
        requests[stream] = Request(stream, json.loads(payload))
    elif kind == REQ_BODY:
        req = requests.get(stream)
        if req:
            req.chunks.append(bytes(payload))
    elif kind == REQ_END:
        req = requests.get(stream)
        if req:
            threading.Thread(target=run, args=(req,), daemon=True).start()
    elif kind == CANCEL:
        req = requests.get(stream)
        if req:
            req.cancelled = True


draining = False


def on_sigterm(_signum, _frame):
    """Finish the requests in flight, then exit (the platform kills us after a grace period)."""
    global draining
    draining = True
    if not requests:
        os._exit(0)


def main():
    signal.signal(signal.SIGTERM, on_sigterm)
    send_json(READY, 0, {"pid": os.getpid(), "runtime": "python"})
    buf = b""
    while True:
        data = sock.recv(1 << 16)
        if not data:
            os._exit(0)
        buf += data
        while len(buf) >= 9:
            length, kind, stream = HEADER.unpack_from(buf)
            if len(buf) < 4 + length:
                break
            payload = buf[9 : 4 + length]
            buf = buf[4 + length :]
            on_frame(kind, stream, payload)


if __name__ == "__main__":
    main()
