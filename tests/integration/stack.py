"""Helpers for integration tests that run the real stack (stdlib only).

    st = stack.Stack(bin_dir, work_dir)
    st.start_all(fakewa=True)               # store, notifier, session, gateway
    tok = stack.token("doctor-1")
    r = stack.http("POST", st.gw("/connect"), tok)   # -> stack.Resp
    st.stop_all()

Every service listens on a free loopback port chosen here; logs go to
<work>/<name>.log. Processes are stopped with SIGTERM and must exit 0.
"""

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ports  # noqa: E402

SECRET = "integration-secret-0123456789abcdef-0123"


free_port = ports.free_port


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(user, ttl=3600, secret=SECRET, **claims):
    """An HS256 JWT for user, as the CRM would send."""
    now = int(time.time())
    body = dict({"sub": user, "iat": now, "exp": now + ttl}, **claims)
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    pay = b64url(json.dumps(body).encode())
    sig = hmac.new(secret.encode(), (head + "." + pay).encode(),
                   hashlib.sha256).digest()
    return head + "." + pay + "." + b64url(sig)


class Resp:
    def __init__(self, status, body, headers):
        self.status = status
        self.raw = body
        self.headers = headers
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.raw[:300])


def http(method, url, tok=None, body=None, headers=None, timeout=15.0):
    """One HTTP request; never raises for an HTTP error status."""
    h = dict(headers or {})
    data = None
    if tok is not None:
        h["Authorization"] = "Bearer " + tok
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Resp(r.status, r.read(), dict(r.headers))
    except urllib.error.HTTPError as e:
        return Resp(e.code, e.read(), dict(e.headers))


def wait_until(what, pred, timeout=20.0, interval=0.1):
    """Poll pred() until it returns something truthy; return it."""
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = pred()
        except (OSError, ValueError) as e:  # connection refused, bad JSON
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


class Proc:
    """A service process with its log file."""

    def __init__(self, name, argv, env, work):
        self.name = name
        self.log_path = os.path.join(work, name + ".log")
        self.log = open(self.log_path, "ab")
        self.p = subprocess.Popen(argv, env=env, stdout=self.log,
                                  stderr=self.log)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=20.0):
        """SIGTERM; returns the exit status (raises if it hangs)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("%s did not stop within %.0f s of SIGTERM"
                                 % (self.name, timeout))
        self.log.close()
        return rc

    def kill9(self):
        self.p.kill()
        self.p.wait()
        self.log.close()


class Stack:
    """store-svc, notifier-svc, session-svc, gateway (and fakewa) on free
    loopback ports, state under work."""

    def __init__(self, bin_dir, work, extra_env=None):
        self.bin = bin_dir
        self.work = work
        self.procs = {}
        p = {k: free_port() for k in ("store", "events", "session", "gw",
                                      "nt", "fakewa")}
        self.ports = p
        self.env = dict(os.environ)
        self.env.update({
            "JWT_SECRET": SECRET,
            "STORE_URL": "tcp://127.0.0.1:%d" % p["store"],
            "EVENTS_URL": "tcp://127.0.0.1:%d" % p["events"],
            "SESSION_URL": "tcp://127.0.0.1:%d" % p["session"],
            "PORT": str(p["gw"]),
            "NOTIFIER_PORT": str(p["nt"]),
            "FAKEWA_PORT": str(p["fakewa"]),
            "DB_PATH": os.path.join(work, "db", "sessions.db"),
            "SESSIONS_DIR": os.path.join(work, "sessions"),
            "WA_WEB_URL": "http://127.0.0.1:%d/" % p["fakewa"],
            "LOG_LEVEL": "debug",
        })
        self.env.update(extra_env or {})

    def gw(self, path):
        return "http://127.0.0.1:%d%s" % (self.ports["gw"], path)

    def fake(self, path):
        return "http://127.0.0.1:%d%s" % (self.ports["fakewa"], path)

    def start(self, name, binary=None, env=None):
        e = dict(self.env)
        e.update(env or {})
        self.procs[name] = Proc(name, [os.path.join(self.bin,
                                                    binary or name)], e,
                                self.work)
        return self.procs[name]

    def start_all(self, fakewa=True):
        """Start the stack and wait for it; on failure nothing is left
        running (the logs name the service that did not come up)."""
        try:
            if fakewa:
                self.start("fakewa")
            self.start("store-svc")
            self.start("notifier-svc")
            self.start("session-svc")
            self.start("gateway")
            wait_until("gateway /health", lambda: http(
                "GET", self.gw("/health"), timeout=2).status == 200, 30)
            if fakewa:
                wait_until("fakewa", lambda: http(
                    "GET", self.fake("/_fake/pages"), timeout=2).status == 200)
        except BaseException:
            self.stop_all()
            raise

    def stop(self, name):
        p = self.procs.pop(name, None)
        return p.stop() if p else None

    def stop_all(self):
        for name in ("gateway", "session-svc", "notifier-svc", "store-svc",
                     "fakewa"):
            p = self.procs.pop(name, None)
            if p is None:
                continue
            try:
                p.stop()
            except AssertionError:
                pass
