"""shop-api: the falco-lab's web application (deliberately vulnerable).

A pre-fork HTTP API in the style of gunicorn: the master binds the listening
socket as root, forks WORKERS workers that drop to nobody, and replaces a
worker after it has served MAX_REQUESTS requests (worker recycling). Workers
talk to redis over TCP (one connection per request, RESP by hand: no
third-party modules), write an access log and uploaded files, and shell out
for the /api/report endpoint.

POST /debug/exec runs its body with /bin/sh -c as a child of the worker: the
"remote code execution" the lab's attacks go through. It answers with the
child's pid so the recorder can label the attack's process tree. Everything
binds to loopback.

Environment: APP_BIND (127.0.0.3:8000), REDIS_ADDR (127.0.0.4:6379),
APP_ROOT (data dir), WORKERS (3), MAX_REQUESTS (150), FLAGS_ADDR (unset; the
v2 rollout sets it: every API request then asks the feature-flag service).
"""

import os
import random
import signal
import socket
import subprocess
import sys
import time

BIND = os.environ.get("APP_BIND", "127.0.0.3:8000")
REDIS = os.environ.get("REDIS_ADDR", "127.0.0.4:6379")
FLAGS = os.environ.get("FLAGS_ADDR", "")
ROOT = os.environ.get("APP_ROOT", "/var/lib/falco-lab/app")
WORKERS = int(os.environ.get("WORKERS", "3"))
MAX_REQUESTS = int(os.environ.get("MAX_REQUESTS", "150"))
RUN_USER = int(os.environ.get("RUN_UID", "65534"))
RUN_GROUP = int(os.environ.get("RUN_GID", "65534"))


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def redis_cmd(*args):
    s = socket.create_connection(hostport(REDIS), timeout=3)
    try:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        data = s.recv(65536)
    finally:
        s.close()
    return data


def flags():
    if not FLAGS:
        return b""
    s = socket.create_connection(hostport(FLAGS), timeout=3)
    try:
        s.sendall(b"GET /flags HTTP/1.0\r\n\r\n")
        return s.recv(4096)
    finally:
        s.close()


def read_request(conn):
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1 << 20:
            return None
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0") or 0)
    while len(body) < n:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return method, path, headers, body


def respond(conn, status, body, ctype="application/json"):
    if isinstance(body, str):
        body = body.encode()
    conn.sendall(
        b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % (status.encode(), ctype.encode(), len(body))
        + body
    )


class App:
    def __init__(self, log):
        self.log = log

    def handle(self, method, path, body):
        if path == "/api/health":
            return "200 OK", '{"redis":%r}' % redis_cmd("PING").strip().decode()
        if path.startswith("/api/items/") and method == "GET":
            flags()
            v = redis_cmd("GET", "item:" + path.rsplit("/", 1)[1])
            return "200 OK", '{"item":%d}' % len(v)
        if path == "/api/items" and method == "POST":
            flags()
            n = redis_cmd("INCR", "items:count")
            redis_cmd("SET", "item:%d" % random.randint(1, 500), body[:200])
            return "201 Created", '{"n":"%s"}' % n.strip().decode()
        if path == "/api/upload" and method == "POST":
            name = "%s/uploads/%d-%06x.bin" % (ROOT, int(time.time()), random.getrandbits(24))
            with open(name, "wb") as f:
                f.write(body)
            self.prune()
            redis_cmd("LPUSH", "uploads", name)
            return "201 Created", '{"stored":"%s"}' % os.path.basename(name)
        if path == "/api/report":
            out = subprocess.run(
                ["/bin/sh", "-c", "date +%%s; wc -l %s/log/access.log" % ROOT],
                capture_output=True, timeout=10,
            ).stdout
            return "200 OK", '{"lines":%d}' % len(out.splitlines())
        if path == "/debug/exec" and method == "POST":
            # The vulnerability: remote command execution as a child of the worker.
            p = subprocess.Popen(["/bin/sh", "-c", body.decode("latin-1")], cwd="/tmp",
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            pid = p.pid
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            return "200 OK", '{"pid":%d,"rc":%d}' % (pid, p.returncode)
        return "404 Not Found", '{"error":"not found"}'

    def prune(self):
        d = ROOT + "/uploads"
        files = sorted(os.listdir(d))
        for f in files[:-40]:
            try:
                os.unlink(os.path.join(d, f))
            except OSError:
                pass


def worker(lsock):
    os.setgid(RUN_GROUP)
    os.setuid(RUN_USER)
    log = open(ROOT + "/log/access.log", "a", buffering=1)
    app = App(log)
    served = 0
    limit = MAX_REQUESTS + random.randint(0, MAX_REQUESTS // 3)
    while served < limit:
        conn, addr = lsock.accept()
        try:
            req = read_request(conn)
            if req is None:
                continue
            method, path, _, body = req
            try:
                status, out = app.handle(method, path, body)
            except Exception as e:  # noqa: BLE001 - a lab app answers 500
                status, out = "500 Internal Server Error", '{"error":%r}' % type(e).__name__
            respond(conn, status, out)
            log.write("%s %s %s %s\n" % (addr[0], method, path, status.split()[0]))
        except OSError:
            pass
        finally:
            conn.close()
            served += 1
    os._exit(0)


def main():
    os.makedirs(ROOT + "/uploads", exist_ok=True)
    os.makedirs(ROOT + "/log", exist_ok=True)
    for d in (ROOT + "/uploads", ROOT + "/log"):
        os.chown(d, RUN_USER, RUN_GROUP)
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(hostport(BIND))
    lsock.listen(64)
    children = set()
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        for c in list(children):
            try:
                os.kill(c, signal.SIGTERM)
            except OSError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        while len(children) < WORKERS and not stopping:
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                worker(lsock)
            children.add(pid)
        try:
            pid, _ = os.wait()
            children.discard(pid)
        except ChildProcessError:
            pass
        except InterruptedError:
            pass
    while children:
        try:
            pid, _ = os.wait()
            children.discard(pid)
        except ChildProcessError:
            break
    sys.exit(0)


if __name__ == "__main__":
    main()
