#!/usr/bin/env python3
"""The gateway over real HTTP, against the real store-svc (and fake-session,
a stand-in for session-svc on the bus), each on free loopback ports with a
temporary database.

    test_gateway.py <bin-dir> <tools-dir>    (python3 stdlib only)

bin-dir holds gateway and store-svc; tools-dir holds buscall and
fake-session. Tokens are minted here (HS256 with hmac/hashlib), so the
test depends on nothing but the binaries under test.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ports  # noqa: E402

BIN = TOOLS = None
SECRET = "0123456789abcdef0123456789abcdef-gateway-it"
ORIGIN = "https://crm.example"
BUS_TIMEOUT_MS = 1500


# ---- tokens ----

def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(claims, key=SECRET, header=None, digest=hashlib.sha256):
    head = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    signing = (b64url(json.dumps(head).encode()) + "." +
               b64url(json.dumps(claims).encode()))
    sig = hmac.new(key.encode(), signing.encode(), digest).digest()
    return signing + "." + b64url(sig)


def token(user, ttl=3600, **claims):
    return jwt({"sub": user, "exp": int(time.time()) + ttl, **claims})


# ---- processes ----

free_port = ports.free_port


class Proc:
    """A child process logging to <dir>/<name>.log."""

    def __init__(self, name, argv, env, workdir):
        self.name = name
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "ab")
        # Only what the test sets, and the sanitizers' options of a
        # sanitizer build's run.
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        base.update({k: v for k, v in os.environ.items()
                     if k in ("ASAN_OPTIONS", "UBSAN_OPTIONS")})
        base.update(env)
        self.p = subprocess.Popen(argv, env=base, stdout=self.log,
                                  stderr=self.log, cwd=workdir)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Send sig and wait; returns the exit status."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            return self.p.wait(timeout)
        finally:
            self.log.close()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.log.close()

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def wait_until(what, pred, timeout=15.0, interval=0.05):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            if pred():
                return
        except Exception as e:  # not up yet
            last = e
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last error: %r)" %
                         (what, last))


def buscall(url, op, user="", args=None, timeout_ms=3000):
    argv = [os.path.join(TOOLS, "buscall"), url, op, user]
    if args is not None:
        argv += [json.dumps(args), str(timeout_ms)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("buscall %s: exit %d: %s %s" %
                           (op, r.returncode, r.stdout, r.stderr))
    return json.loads(r.stdout)


class Stack:
    """store-svc, gateways and fake sessions sharing one temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wa-gw-it-")
        self.db = os.path.join(self.dir, "db", "sessions.db")
        self.store_url = "tcp://127.0.0.1:%d" % free_port()
        self.procs = []
        self.store = None

    def start_store(self):
        self.store = Proc("store-svc", [os.path.join(BIN, "store-svc")],
                          {"DB_PATH": self.db, "STORE_URL": self.store_url,
                           "LOG_LEVEL": "debug"}, self.dir)
        self.procs.append(self.store)
        wait_until("store-svc ping",
                   lambda: buscall(self.store_url, "ping") is not None)
        return self.store

    def start_gateway(self, name="gateway", **env):
        port = free_port()
        full = {
            "PORT": str(port), "STORE_URL": self.store_url,
            "JWT_SECRET": SECRET,
            "ALLOWED_ORIGINS": ORIGIN + ", http://localhost:5173",
            "ADMIN_USER_IDS": "boss,root",
            "RATE_LIMIT_RPS": "1000", "RATE_LIMIT_BURST": "1000",
            "BUS_TIMEOUT_MS": str(BUS_TIMEOUT_MS), "GATEWAY_THREADS": "16",
            "LOG_LEVEL": "debug",
        }
        full.update({k: str(v) for k, v in env.items()})
        gw = Proc(name, [os.path.join(BIN, "gateway")], full, self.dir)
        gw.port = port
        self.procs.append(gw)
        # Its own log line too: a port picked free can be taken by another
        # process before the gateway binds it, and that one would answer.
        wait_until(name + " listening",
                   lambda: "listening on port %d " % port in gw.text() and
                   (socket.create_connection(("127.0.0.1", port),
                                             0.2).close() or True))
        return gw

    def start_session(self, name, url=None):
        url = url or "tcp://127.0.0.1:%d" % free_port()
        p = Proc(name, [os.path.join(TOOLS, "fake-session"), self.store_url,
                        url, name], {}, self.dir)
        p.url = url
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            p.kill()
        # Logs are kept when asked (WA_KEEP_TMP=1), e.g. to read a failure.
        if os.environ.get("WA_KEEP_TMP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


# ---- HTTP ----

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names; repeated ones joined
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %r %r>" % (self.status, self.headers, self.body[:300])


def call(port, method, path, tok=None, body=None, headers=None,
         timeout=15):
    h = dict(headers or {})
    if tok is not None:
        h["Authorization"] = "Bearer " + tok
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        hdrs = {}
        for k, v in r.getheaders():
            k = k.lower()
            hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
        return Resp(r.status, hdrs, data)
    finally:
        conn.close()


def metric(port, name):
    """The value of an unlabelled metric on /metrics."""
    text = call(port, "GET", "/metrics").body.decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    if m is None:
        raise AssertionError("no metric " + name)
    return int(m.group(1))


def raw(port, data, timeout=5.0, shut_write=False):
    """Send bytes, read until the server closes or goes quiet. Returns
    (status, head, body, closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout)
    out = b""
    closed = False
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if shut_write:
            s.shutdown(socket.SHUT_WR)
        s.settimeout(timeout)
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            out += chunk
            head_end = out.find(b"\r\n\r\n")
            if head_end >= 0:
                m = re.search(rb"(?i)content-length: *(\d+)", out[:head_end])
                if m and len(out) >= head_end + 4 + int(m.group(1)):
                    s.settimeout(0.5)  # answer complete: closing soon?
    finally:
        s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d+)", head)
    return (int(m.group(1)) if m else 0, head.decode("latin-1"), body,
            closed)


def assert_error(t, r, status, code, contains=None):
    t.assertEqual(r.status, status, r)
    body = r.json()
    t.assertEqual(set(body), {"error", "code"}, body)
    t.assertEqual(body["code"], code, body)
    t.assertIsInstance(body["error"], str)
    if contains is not None:
        t.assertIn(contains, body["error"])
    t.assertEqual(r.headers.get("content-type"), "application/json")
    t.assertIn("x-request-id", r.headers)


# ---- the shared stack: store-svc and one gateway, no session service ----

S = None
GW = None
U1, U2 = token("u1"), token("u2")


def setUpModule():
    global S, GW
    S = Stack()
    S.start_store()
    GW = S.start_gateway()


def tearDownModule():
    if S is not None:
        S.close()


class Basics(unittest.TestCase):
    def test_health_without_session_service(self):
        r = call(GW.port, "GET", "/health")
        self.assertEqual(r.status, 503, r)
        b = r.json()
        self.assertEqual(b["status"], "unavailable")
        self.assertEqual(b["store"], "ok")
        self.assertEqual(b["sessionServices"], 0)
        self.assertEqual(b["service"], "gateway")

    def test_openapi(self):
        r = call(GW.port, "GET", "/openapi.json")
        self.assertEqual(r.status, 200)
        doc = r.json()
        self.assertEqual(doc["openapi"], "3.1.0")
        for p in ("/health", "/status", "/connect", "/disconnect", "/chats",
                  "/messages/{chatId}", "/send", "/chat-by-phone", "/logs",
                  "/diagnostics", "/admin/sessions", "/metrics",
                  "/openapi.json"):
            self.assertIn(p, doc["paths"])
        self.assertIn("bearerAuth", doc["components"]["securitySchemes"])

    def test_metrics(self):
        call(GW.port, "GET", "/status", U1)
        call(GW.port, "GET", "/nope")
        # A request is counted just after its answer is sent: the client
        # can be faster than the gateway's bookkeeping, so look again until
        # the scrape is the only request in flight.
        seen = []

        def scraped_alone():
            seen[:] = [call(GW.port, "GET", "/metrics")]
            return "wa_gateway_http_requests_in_flight 1\n" in \
                seen[0].body.decode()

        wait_until("a scrape alone in flight", scraped_alone, 5)
        r = seen[0]
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith("text/plain"))
        text = r.body.decode()
        self.assertRegex(text, r'wa_gateway_http_requests_total\{route="/status",'
                         r'method="GET",status="200"\} \d+')
        self.assertRegex(text, r'wa_gateway_http_requests_total\{route='
                         r'"unmatched",method="GET",status="404"\} \d+')
        self.assertIn('wa_gateway_http_request_duration_seconds_bucket{route='
                      '"/status",method="GET",le="+Inf"}', text)
        self.assertIn("wa_gateway_http_requests_in_flight 1", text)
        self.assertIn("# TYPE wa_gateway_rate_limited_total counter", text)

    def test_status_shape(self):
        r = call(GW.port, "GET", "/status", token("fresh-user"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {
            "status": "disconnected", "phoneNumber": None,
            "displayName": None, "qrCode": None, "connectedAt": None,
            "lastActivity": None})

    def test_status_without_live_instance(self):
        # A running status whose session-svc is gone (here: none ever ran)
        # runs nowhere: "error", and never the stale QR.
        buscall(S.store_url, "session.upsert", "qruser", {
            "status": "qr", "qrCode": "data:image/png;base64,AAAA",
            "phoneNumber": "+41791234567", "displayName": "Dr Q"})
        b = call(GW.port, "GET", "/status", token("qruser")).json()
        self.assertEqual(b["status"], "error")
        self.assertIsNone(b["qrCode"])
        self.assertEqual(b["displayName"], "Dr Q")
        self.assertEqual(set(b), {"status", "phoneNumber", "displayName",
                                  "qrCode", "connectedAt", "lastActivity"})
        for status in ("initializing", "authenticated", "ready"):
            buscall(S.store_url, "session.upsert", "qruser",
                    {"status": status})
            b = call(GW.port, "GET", "/status", token("qruser")).json()
            self.assertEqual(b["status"], "error", status)

    def test_request_id(self):
        r = call(GW.port, "GET", "/status", U1,
                 headers={"X-Request-Id": "it-rid-0001"})
        self.assertEqual(r.headers["x-request-id"], "it-rid-0001")
        r = call(GW.port, "GET", "/status", U1)
        self.assertRegex(r.headers["x-request-id"], r"^[0-9a-f]{24}$")
        # Not a valid rid (too long, or not printable ASCII): replaced.
        for bad in ("x" * 65, "a b c", "\u00e9t\u00e9".encode().decode(
                "latin-1")):
            r = call(GW.port, "GET", "/status", U1,
                     headers={"X-Request-Id": bad})
            self.assertRegex(r.headers["x-request-id"], r"^[0-9a-f]{24}$")
        # Errors carry it too, and it reaches the log line of the request.
        r = call(GW.port, "GET", "/nope",
                 headers={"X-Request-Id": "it-rid-404"})
        self.assertEqual(r.headers["x-request-id"], "it-rid-404")
        wait_until("the request logged",
                   lambda: '"rid":"it-rid-404"' in GW.text(), 5)
        # The store got it as the bus rid.
        call(GW.port, "GET", "/logs", U1,
             headers={"X-Request-Id": "it-rid-bus"})
        wait_until("store-svc logged the rid",
                   lambda: '"rid":"it-rid-bus"' in S.store.text(), 5)

    def test_not_found(self):
        # "/" is the live page (test_livepage.py); its file names are not
        # routes of their own.
        for path in ("/nope", "/status/", "/messages/", "/messages",
                     "/admin", "/health/x", "/index.html", "/app.js/"):
            assert_error(self, call(GW.port, "GET", path, U1), 404,
                         "not_found")

    def test_encoded_nul_in_path(self):
        # CivetWeb's own decoding ended the path at %00: /status%00junk was
        # served as /status. Refused before routing: 400, the DESIGN shape.
        for path in ("/status%00junk", "/status%00",
                     "/messages/41791234567@c.us%00junk",
                     "/messages/41791234567%40c.us%00", "/nope%00",
                     "/health%00x", "/%00"):
            r = call(GW.port, "GET", path, U1,
                     headers={"X-Request-Id": "it-nul-1"})
            assert_error(self, r, 400, "bad_request", "%00")
            self.assertEqual(r.headers["x-request-id"], "it-nul-1")
        for path in ("/status%zz", "/status%0", "/status%"):
            assert_error(self, call(GW.port, "GET", path, U1), 400,
                         "bad_request", "percent-encoding")
        # Other escapes still decode.
        self.assertEqual(call(GW.port, "GET", "/st%61tus", U1).status, 200)
        r = call(GW.port, "GET", "/%73tatus%3Fx", U1)  # an encoded "?"
        assert_error(self, r, 404, "not_found")

    def test_asterisk_and_absolute_targets(self):
        # CivetWeb 1.15 answers these with nothing at all; every request
        # gets an answer with X-Request-Id.
        status, head, body, closed = raw(
            GW.port, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n"
            b"X-Request-Id: it-star-1\r\n\r\n")
        self.assertEqual(status, 204, head)
        self.assertIn("\r\nX-Request-Id: it-star-1\r\n", head)
        self.assertRegex(head, r"\r\nAllow: GET, HEAD, POST, OPTIONS(\r\n|$)")
        self.assertEqual(body, b"")
        self.assertTrue(closed)
        status, head, body, _ = raw(
            GW.port, b"OPTIONS * HTTP/1.0\r\n\r\n")
        self.assertEqual(status, 204, head)
        self.assertRegex(head, r"\r\nX-Request-Id: [0-9a-f]{24}\r\n")
        for target in (b"*", b"http://elsewhere.example/status",
                       b"http://elsewhere.example:%d/status" % GW.port):
            status, head, body, closed = raw(
                GW.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
                b"X-Request-Id: it-star-2\r\n\r\n")
            self.assertEqual(status, 400, (target, head))
            self.assertIn("\r\nX-Request-Id: it-star-2\r\n", head)
            self.assertEqual(json.loads(body)["code"], "bad_request")
            self.assertTrue(closed)
        # A kept connection that served a request and then goes quiet is
        # closed without a stray answer.
        status, head, body, _ = raw(
            GW.port, b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(status, 200)
        self.assertEqual(body.count(b"HTTP/1.1"), 0)
        m = call(GW.port, "GET", "/metrics").body.decode()
        self.assertRegex(m, r'wa_gateway_http_requests_total\{route='
                         r'"unmatched",method="OPTIONS",status="204"\} \d+')

    def test_metrics_label_the_request(self):
        call(GW.port, "OPTIONS", "/logs", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
        call(GW.port, "DELETE", "/logs", U1)
        call(GW.port, "POST", "/logs", U1, body=b"")
        call(GW.port, "BREW", "/logs", U1)
        etag = call(GW.port, "GET", "/").headers["etag"]
        r = call(GW.port, "GET", "/", headers={"If-None-Match": etag})
        self.assertEqual(r.status, 304)
        text = call(GW.port, "GET", "/metrics").body.decode()
        for method, status in (("OPTIONS", 204), ("DELETE", 405),
                               ("POST", 405)):
            self.assertRegex(text, r'wa_gateway_http_requests_total\{route='
                             r'"/logs",method="%s",status="%d"\} \d+'
                             % (method, status))
        # CivetWeb itself refuses a method it does not know, before any
        # route: unmatched, and "other", never the method's own name.
        self.assertRegex(text, r'wa_gateway_http_requests_total\{route='
                         r'"unmatched",method="other",status="\d{3}"\} \d+')
        self.assertRegex(text, r'wa_gateway_http_requests_total\{route='
                         r'"/",method="GET",status="304"\} \d+')
        self.assertIn('wa_gateway_http_request_duration_seconds_count{route='
                      '"/logs",method="OPTIONS"}', text)
        self.assertNotIn('status="other"', text)
        self.assertNotIn("BREW", text)

    def test_method_not_allowed(self):
        cases = [("POST", "/status", "GET, HEAD, OPTIONS"),
                 ("DELETE", "/logs", "GET, HEAD, OPTIONS"),
                 ("GET", "/send", "POST, OPTIONS"),
                 ("HEAD", "/send", "POST, OPTIONS"),
                 ("GET", "/connect", "POST, OPTIONS"),
                 ("PUT", "/messages/41791234567@c.us", "GET, HEAD, OPTIONS"),
                 ("POST", "/health", "GET, HEAD, OPTIONS"),
                 ("POST", "/metrics", "GET, HEAD, OPTIONS")]
        for method, path, allow in cases:
            r = call(GW.port, method, path, U1, body=b"" if method in
                     ("POST", "PUT") else None)
            self.assertEqual(r.status, 405, (method, path))
            if method != "HEAD":
                assert_error(self, r, 405, "method_not_allowed")
            self.assertEqual(r.headers.get("allow"), allow, (method, path))

    def test_head(self):
        # HEAD is GET without the body: same status and headers (a load
        # balancer's health check, curl -I).
        for path, tok in (("/health", None), ("/status", U1),
                          ("/openapi.json", None), ("/nope", None),
                          ("/status", None)):
            g = call(GW.port, "GET", path, tok)
            h = call(GW.port, "HEAD", path, tok)
            self.assertEqual(h.status, g.status, path)
            self.assertEqual(h.body, b"", path)
            self.assertEqual(h.headers.get("content-type"),
                             g.headers.get("content-type"), path)
            if path != "/health":  # its body holds measured times
                self.assertEqual(h.headers.get("content-length"),
                                 g.headers.get("content-length"), path)
            self.assertIn("x-request-id", h.headers)

    def test_vary_on_every_answer(self):
        for method, path, tok in (("GET", "/status", U1),
                                  ("GET", "/status", None),
                                  ("GET", "/nope", None),
                                  ("GET", "/health", None),
                                  ("GET", "/metrics", None),
                                  ("POST", "/status", U1)):
            r = call(GW.port, method, path, tok)
            self.assertEqual(r.headers.get("vary"), "Origin", (method, path))

    def test_never_a_token_in_the_log(self):
        secret_tok = token("log-user", marker="do-not-log")
        call(GW.port, "GET", "/status", secret_tok)
        call(GW.port, "GET", "/status", secret_tok + "x")  # bad signature
        log = GW.text()
        self.assertNotIn(secret_tok.split(".")[1], log)
        self.assertNotIn(secret_tok.split(".")[2], log)
        for line in log.splitlines():
            json.loads(line)  # every line is one JSON object


class Auth(unittest.TestCase):
    def expect_401(self, headers, why=None):
        r = call(GW.port, "GET", "/status", headers=headers)
        assert_error(self, r, 401, "unauthorized", why)
        self.assertEqual(r.headers.get("www-authenticate"), "Bearer")
        return r

    def test_missing(self):
        self.expect_401({}, "missing token")
        self.expect_401({"Authorization": "Bearer"}, "missing token")
        self.expect_401({"Authorization": "Bearer "}, "missing token")

    def test_bad_signature(self):
        self.expect_401({"Authorization": "Bearer " +
                         jwt({"sub": "u1", "exp": int(time.time()) + 60},
                             key="another-secret-another-secret-123")},
                        "bad signature")
        t = U1[:-2] + ("AA" if U1[-2:] != "AA" else "BB")
        self.expect_401({"Authorization": "Bearer " + t})

    def test_expired(self):
        self.expect_401({"Authorization": "Bearer " + token("u1", ttl=-120)})
        # exp is required.
        self.expect_401({"Authorization": "Bearer " + jwt({"sub": "u1"})})

    def test_alg_none_and_others(self):
        claims = {"sub": "u1", "exp": int(time.time()) + 60}
        seg = (b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode()) +
               "." + b64url(json.dumps(claims).encode()))
        self.expect_401({"Authorization": "Bearer " + seg + "."})
        self.expect_401({"Authorization": "Bearer " + seg})
        self.expect_401({"Authorization": "Bearer " + jwt(
            claims, header={"alg": "HS512", "typ": "JWT"},
            digest=hashlib.sha512)})
        self.expect_401({"Authorization": "Bearer " + jwt(
            claims, header={"alg": "RS256", "typ": "JWT"})})

    def test_garbage(self):
        for h in ("Bearer garbage", "Bearer a.b.c", "Bearer ....",
                  "Bearer " + "A" * 9000, "Basic dTE6cGFzcw==",
                  "UserId u1", "u1", "Bearer \u00e9t\u00e9".encode(
                      "utf-8").decode("latin-1")):
            self.expect_401({"Authorization": h})

    def test_anonymous_refused(self):
        self.expect_401({"Authorization": "Bearer " + jwt(
            {"role": "anon", "exp": int(time.time()) + 60})})
        self.expect_401({"Authorization": "Bearer " + token(
            "anon-user", is_anonymous=True)})

    def test_other_claims_name_the_user(self):
        b = call(GW.port, "GET", "/status", jwt(
            {"userId": "claim-user", "exp": int(time.time()) + 60}))
        self.assertEqual(b.status, 200, b)

    def test_public_routes_need_no_token(self):
        for path in ("/health", "/metrics", "/openapi.json"):
            r = call(GW.port, "GET", path)
            self.assertIn(r.status, (200, 503), path)
            # and a bad token does not matter there
            r = call(GW.port, "GET", path, "garbage")
            self.assertIn(r.status, (200, 503), path)

    def test_every_private_route_needs_a_token(self):
        for method, path in (("GET", "/status"), ("POST", "/connect"),
                             ("POST", "/disconnect"), ("GET", "/chats"),
                             ("GET", "/messages/41791234567@c.us"),
                             ("POST", "/send"), ("GET", "/logs"),
                             ("GET", "/chat-by-phone?phone=%2B41791234567"),
                             ("GET", "/diagnostics"),
                             ("GET", "/admin/sessions")):
            r = call(GW.port, method, path,
                     body=b"{}" if method == "POST" else None)
            assert_error(self, r, 401, "unauthorized")


class Logs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ids = {"alice": [], "bob": []}
        for i in range(5):
            for user in ("alice", "bob"):
                r = buscall(S.store_url, "log.append", user,
                            {"eventType": "message",
                             "eventData": {"n": i, "owner": user}})
                cls.ids[user].append(r["id"])

    def test_users_see_only_their_own(self):
        for user in ("alice", "bob"):
            r = call(GW.port, "GET", "/logs", token(user))
            self.assertEqual(r.status, 200, r)
            logs = r.json()["logs"]
            self.assertEqual(len(logs), 5)
            for row in logs:
                self.assertEqual(set(row), {"id", "eventType", "eventData",
                                            "timestamp"})
                self.assertEqual(row["eventData"]["owner"], user)
            self.assertEqual(sorted(x["id"] for x in logs),
                             sorted(self.ids[user]))

    def test_concurrent_users_get_their_own(self):
        # Many users at once: the gateway's store calls then share
        # bus.batch messages, and every answer must still reach its own
        # request.
        users = ["conc-%d" % i for i in range(16)]
        for u in users:
            buscall(S.store_url, "log.append", u,
                    {"eventType": "message", "eventData": {"owner": u}})
        before = metric(GW.port, "wa_gateway_store_calls_total")
        wrong = []

        def client(u):
            tok = token(u)
            for i in range(20):
                path = "/logs" if i % 2 else "/status"
                r = call(GW.port, "GET", path, tok, timeout=10)
                if r.status != 200:
                    wrong.append((u, path, r.status))
                elif path == "/logs" and \
                        [x["eventData"]["owner"] for x in r.json()["logs"]] \
                        != [u]:
                    wrong.append((u, path, r.json()))

        threads = [threading.Thread(target=client, args=(u,))
                   for u in users]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(wrong, [])
        self.assertGreaterEqual(
            metric(GW.port, "wa_gateway_store_calls_total") - before,
            len(users) * 20)
        # Batches never carry more calls than were made.
        self.assertLessEqual(
            metric(GW.port, "wa_gateway_store_batched_calls_total"),
            metric(GW.port, "wa_gateway_store_calls_total"))

    def test_kept_body_is_never_stale(self):
        # The gateway keeps each user's last /logs body and asks store-svc
        # whether the log changed; a row appended is in the very next
        # answer, at every limit, and an unchanged log is served from what
        # was kept.
        tok = token("poller")
        self.assertEqual(call(GW.port, "GET", "/logs", tok).json(),
                         {"logs": []})
        for n in range(12):
            buscall(S.store_url, "log.append", "poller",
                    {"eventType": "message", "eventData": {"n": n}})
            hits = metric(GW.port, "wa_gateway_logs_cache_hits_total")
            for _ in range(2):
                r = call(GW.port, "GET", "/logs", tok)
                self.assertEqual(r.status, 200, r)
                self.assertEqual([x["eventData"]["n"]
                                  for x in r.json()["logs"]],
                                 list(range(n, -1, -1)))
                r1 = call(GW.port, "GET", "/logs?limit=1", tok)
                self.assertEqual([x["eventData"]["n"]
                                  for x in r1.json()["logs"]], [n])
            # The second round of each was the kept body.
            self.assertGreaterEqual(
                metric(GW.port, "wa_gateway_logs_cache_hits_total") - hits, 2)
        self.assertGreater(metric(GW.port, "wa_gateway_logs_cache_entries"),
                           0)
        # A gateway without requests for a while drops what it kept.
        time.sleep(3)
        self.assertEqual(metric(GW.port, "wa_gateway_logs_cache_entries"), 0)
        self.assertEqual(call(GW.port, "GET", "/logs?limit=1", tok).json()[
            "logs"][0]["eventData"]["n"], 11)

    def test_no_parameter_names_another_user(self):
        for path in ("/logs?user=bob", "/logs?userId=bob&user_id=bob",
                     "/logs?limit=50&sub=bob"):
            r = call(GW.port, "GET", path, token("alice"),
                     headers={"X-User-Id": "bob", "X-Forwarded-User": "bob"})
            if r.status == 200:
                for row in r.json()["logs"]:
                    self.assertEqual(row["eventData"]["owner"], "alice")
        # A UserId header is not accepted outside dev mode.
        r = call(GW.port, "GET", "/logs", headers={"Authorization":
                                                   "UserId bob"})
        self.assertEqual(r.status, 401)

    def test_limit(self):
        r = call(GW.port, "GET", "/logs?limit=2", token("alice"))
        logs = r.json()["logs"]
        self.assertEqual(len(logs), 2)
        # Newest first.
        self.assertEqual(logs[0]["eventData"]["n"], 4)
        self.assertEqual(logs[1]["eventData"]["n"], 3)
        for ok in ("1", "500", "050"):
            self.assertEqual(call(GW.port, "GET", "/logs?limit=" + ok,
                                  token("alice")).status, 200, ok)

    def test_bad_limits(self):
        for bad in ("0", "501", "-1", "abc", "1.5", "", "1e2", "%205",
                    "5&limit=6", "99999999999", "0x10"):
            r = call(GW.port, "GET", "/logs?limit=" + bad, token("alice"))
            assert_error(self, r, 400, "bad_request", "limit")


class Cors(unittest.TestCase):
    def test_allowed_origin(self):
        r = call(GW.port, "GET", "/status", U1, headers={"Origin": ORIGIN})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["access-control-allow-origin"], ORIGIN)
        self.assertEqual(r.headers["vary"], "Origin")
        self.assertIn("X-Request-Id",
                      r.headers["access-control-expose-headers"])
        self.assertIn("Retry-After",
                      r.headers["access-control-expose-headers"])
        # Errors carry CORS too, so the browser can read them.
        r = call(GW.port, "GET", "/status", headers={"Origin": ORIGIN})
        self.assertEqual(r.status, 401)
        self.assertEqual(r.headers["access-control-allow-origin"], ORIGIN)
        r = call(GW.port, "GET", "/status", U1,
                 headers={"Origin": "http://localhost:5173"})
        self.assertEqual(r.headers["access-control-allow-origin"],
                         "http://localhost:5173")

    def test_refused_origin(self):
        for origin in ("https://evil.example", "https://crm.example.evil",
                       "null", "https://CRM.example", ORIGIN + "/"):
            r = call(GW.port, "GET", "/status", U1,
                     headers={"Origin": origin})
            self.assertEqual(r.status, 200)
            self.assertFalse([h for h in r.headers
                              if h.startswith("access-control-")], origin)
            self.assertEqual(r.headers["vary"], "Origin")

    def test_preflight_allowed(self):
        r = call(GW.port, "OPTIONS", "/send", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.headers["access-control-allow-origin"], ORIGIN)
        self.assertEqual(r.headers["access-control-allow-methods"],
                         "POST, OPTIONS")
        self.assertEqual(r.headers["access-control-allow-headers"],
                         "Authorization, Content-Type, X-Request-Id")
        self.assertEqual(r.headers["access-control-max-age"], "600")
        self.assertEqual(r.headers["vary"], "Origin")
        # No token is needed for a preflight.
        r = call(GW.port, "OPTIONS", "/messages/41791234567@c.us", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
        self.assertEqual(r.status, 204)
        self.assertEqual(r.headers["access-control-allow-methods"],
                         "GET, HEAD, OPTIONS")

    def test_preflight_refused(self):
        for headers in ({"Origin": "https://evil.example",
                         "Access-Control-Request-Method": "GET"},
                        {"Access-Control-Request-Method": "GET"}):
            r = call(GW.port, "OPTIONS", "/status", headers=headers)
            assert_error(self, r, 403, "forbidden", "origin")
            self.assertFalse([h for h in r.headers
                              if h.startswith("access-control-")])
        r = call(GW.port, "OPTIONS", "/nope", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
        self.assertEqual(r.status, 404)

    def test_plain_options(self):
        r = call(GW.port, "OPTIONS", "/status")
        self.assertEqual(r.status, 204)
        self.assertEqual(r.headers["allow"], "GET, HEAD, OPTIONS")


class Admin(unittest.TestCase):
    def test_non_admin_forbidden(self):
        r = call(GW.port, "GET", "/admin/sessions", U1)
        assert_error(self, r, 403, "forbidden", "admin only")
        # A role that is not an admin role does not help.
        r = call(GW.port, "GET", "/admin/sessions",
                 token("u1", role="authenticated"))
        self.assertEqual(r.status, 403)

    def test_admins(self):
        buscall(S.store_url, "session.upsert", "secret-qr", {
            "status": "qr", "qrCode": "data:image/png;base64,SECRET"})
        for tok in (token("boss"), token("root"), token("x", role="admin"),
                    token("svc", role="service_role")):
            r = call(GW.port, "GET", "/admin/sessions", tok)
            self.assertEqual(r.status, 200, r)
            sessions = r.json()["sessions"]
            self.assertIsInstance(sessions, list)
            users = {s["userId"]: s for s in sessions}
            self.assertIn("secret-qr", users)
            self.assertEqual(users["secret-qr"]["status"], "qr")
            self.assertIs(users["secret-qr"]["instanceAlive"], False)
            # QR codes are never listed, not even to admins.
            self.assertNotIn("SECRET", r.body.decode())
            for s in sessions:
                self.assertNotIn("qrCode", s)

    def test_paging_and_bad_paging(self):
        r = call(GW.port, "GET", "/admin/sessions?limit=1&offset=0",
                 token("boss"))
        self.assertEqual(r.status, 200)
        self.assertLessEqual(len(r.json()["sessions"]), 1)
        for q in ("limit=0", "limit=501", "offset=-1", "offset=x",
                  "limit=1&limit=2"):
            assert_error(self, call(GW.port, "GET", "/admin/sessions?" + q,
                                    token("boss")), 400, "bad_request")

    def test_diagnostics(self):
        r = call(GW.port, "GET", "/diagnostics", U1)
        self.assertEqual(r.status, 200, r)
        d = r.json()
        self.assertEqual(d["gateway"]["version"], d["store"]["version"])
        self.assertGreaterEqual(d["gateway"]["uptimeMs"], 0)
        self.assertEqual(d["store"]["status"], "ok")
        self.assertIsInstance(d["store"]["pingMs"], (int, float))
        self.assertIsInstance(d["sessionsByStatus"], dict)
        self.assertIsInstance(d["instances"], list)


class Bodies(unittest.TestCase):
    SEND_OK = {"chatId": "41791234567@c.us", "message": "hello"}

    def test_valid_body_reaches_placement(self):
        # Validation passed; no session service exists: 503 honestly.
        r = call(GW.port, "POST", "/send", U1, dict(self.SEND_OK, extra=1))
        assert_error(self, r, 503, "no_session_service")

    def test_malformed_and_wrong(self):
        cases = [
            (b"{", "body"), (b"", "body"), (b"   ", "body"),
            (b"[1,2]", "object"), (b"\"x\"", "object"), (b"null", "object"),
            (b'{"chatId":"41791234567@c.us","message":"x"} junk', "JSON"),
            (b'{"message":"x"}', "chatId"),
            (b'{"chatId":"41791234567@c.us"}', "message"),
            (b'{"chatId":41791234567,"message":"x"}', "chatId"),
            (b'{"chatId":"41791234567@c.us","message":5}', "message"),
            (b'{"chatId":"41791234567@c.us","message":["x"]}', "message"),
            (b'{"chatId":"41791234567@c.us","message":null}', "message"),
            (b'{"chatId":"41791234567@c.us","message":""}', "message"),
            (b'{"chatId":"123@c.us","message":"x"}', "chatId"),
            (b'{"chatId":"41791234567@s.whatsapp.net","message":"x"}',
             "chatId"),
            (b'{"chatId":"41791234567@c.us","message":"\xff\xfe"}', "UTF-8"),
            (b'{"chatId":"41791234567@c.us","message":"a\\u0000b"}',
             "u0000"),
            (b'{"chatId":"41791234567@c.us","message":"\\ud800"}', "JSON"),
            (b'{"chatId":"41791234567@c.us","message":"x","message":"y"}',
             "twice"),
        ]
        for body, word in cases:
            r = call(GW.port, "POST", "/send", U1, body,
                     headers={"Content-Type": "application/json"})
            assert_error(self, r, 400, "bad_request", word)

    def test_message_size_limit(self):
        r = call(GW.port, "POST", "/send", U1,
                 {"chatId": "41791234567@c.us", "message": "a" * 65537})
        assert_error(self, r, 400, "bad_request", "message")
        r = call(GW.port, "POST", "/send", U1,
                 {"chatId": "41791234567@c.us", "message": "a" * 65536})
        self.assertEqual(r.status, 503)  # valid: on to placement

    def test_too_large_declared(self):
        # The answer comes before the body is sent, and the connection
        # closes: the rest is never read.
        req = (b"POST /send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
               U1.encode() + b"\r\nContent-Type: application/json\r\n"
               b"Content-Length: 100000000\r\n\r\n{\"chatId\":")
        t0 = time.monotonic()
        status, head, body, closed = raw(GW.port, req)
        self.assertEqual(status, 413, head)
        self.assertEqual(json.loads(body)["code"], "payload_too_large")
        self.assertIn("Connection: close", head)
        self.assertTrue(closed)
        self.assertLess(time.monotonic() - t0, 3)
        # Even before authentication.
        req = (b"POST /send HTTP/1.1\r\nHost: x\r\n"
               b"Content-Length: 100000000\r\n\r\nxx")
        status, head, body, closed = raw(GW.port, req)
        self.assertEqual(status, 401, head)
        self.assertTrue(closed)

    def test_too_large_sent(self):
        big = b'{"chatId":"41791234567@c.us","message":"' + b"a" * 300000 + \
            b'"}'
        req = (b"POST /send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
               U1.encode() + b"\r\nContent-Length: " +
               str(len(big)).encode() + b"\r\n\r\n" + big)
        status, head, body, closed = raw(GW.port, req)
        self.assertEqual(status, 413, head)

    def test_chunked(self):
        def chunked(payload, size=1000):
            out = b""
            for i in range(0, len(payload), size):
                part = payload[i:i + size]
                out += b"%x\r\n" % len(part) + part + b"\r\n"
            return out + b"0\r\n\r\n"

        head = (b"POST /send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                U1.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        ok = json.dumps(self.SEND_OK).encode()
        status, h, body, _ = raw(GW.port, head + chunked(ok, 7))
        self.assertEqual(status, 503, h)  # parsed, valid, no session svc
        big = b'{"chatId":"41791234567@c.us","message":"' + b"a" * 300000 + \
            b'"}'
        status, h, body, closed = raw(GW.port, head + chunked(big, 8192))
        self.assertEqual(status, 413, h)
        self.assertTrue(closed)

    def test_length_required(self):
        req = (b"POST /send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
               U1.encode() + b"\r\n\r\n")
        status, head, body, _ = raw(GW.port, req)
        self.assertEqual(status, 411, head)
        self.assertIn("Content-Length", json.loads(body)["error"])

    def test_truncated_body(self):
        req = (b"POST /send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
               U1.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"chatId\"")
        status, head, body, closed = raw(GW.port, req, shut_write=True)
        self.assertEqual(status, 400, head)
        self.assertTrue(closed)

    def test_keep_alive_after_small_errors(self):
        # Two requests on one connection: a 400 does not cost the
        # connection.
        conn = http.client.HTTPConnection("127.0.0.1", GW.port, timeout=5)
        try:
            conn.request("POST", "/send", body=b"{",
                         headers={"Authorization": "Bearer " + U1})
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 400)
            conn.request("GET", "/status",
                         headers={"Authorization": "Bearer " + U1})
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
        finally:
            conn.close()


class SessionRoutesWithoutSessionService(unittest.TestCase):
    def test_all_503(self):
        for method, path, body in (
                ("POST", "/connect", None), ("POST", "/disconnect", None),
                ("GET", "/chats", None),
                ("GET", "/messages/41791234567@c.us?limit=10", None),
                ("GET", "/messages/41791234567%40c.us", None),
                ("GET", "/messages/120363025246125888@g.us", None),
                ("POST", "/send", {"chatId": "41791234567-1600000000@g.us",
                                   "message": "hi"}),
                ("GET", "/chat-by-phone?phone=%2B41791234567", None),
                ("GET", "/chat-by-phone?phone=+41791234567", None)):
            r = call(GW.port, method, path, U1, body)
            assert_error(self, r, 503, "no_session_service")

    def test_input_checked_first(self):
        for path, word in (("/messages/4179@c.us", "chatId"),
                           ("/messages/41791234567@c.us%2Fx", "chatId"),
                           ("/messages/" + "1" * 300, "chatId"),
                           ("/messages/41791234567@c.us?limit=0", "limit"),
                           ("/messages/41791234567@c.us?limit=x", "limit"),
                           ("/chat-by-phone", "phone"),
                           ("/chat-by-phone?phone=41791234567", "phone"),
                           ("/chat-by-phone?phone=%2B0791234567", "phone"),
                           ("/chat-by-phone?phone=%2B41%2079", "phone"),
                           ("/chat-by-phone?phone=%2B4179&phone=%2B4179",
                            "phone")):
            r = call(GW.port, "GET", path, U1)
            if r.status == 404:  # "%2F" decoded to a second segment
                continue
            assert_error(self, r, 400, "bad_request", word)


class RateLimit(unittest.TestCase):
    def test_429_with_retry_after(self):
        gw = S.start_gateway("gateway-rl", RATE_LIMIT_RPS=1,
                             RATE_LIMIT_BURST=3)
        try:
            t = token("rl-user")
            codes = [call(gw.port, "GET", "/status", t).status
                     for _ in range(3)]
            self.assertEqual(codes, [200, 200, 200])
            r = call(gw.port, "GET", "/status", t,
                     headers={"Origin": ORIGIN})
            assert_error(self, r, 429, "rate_limited")
            self.assertRegex(r.headers["retry-after"], r"^[1-9][0-9]*$")
            self.assertEqual(r.headers["access-control-allow-origin"], ORIGIN)
            # Other users are not affected; public routes are not limited.
            self.assertEqual(call(gw.port, "GET", "/status",
                                  token("rl-other")).status, 200)
            for _ in range(5):
                self.assertIn(call(gw.port, "GET", "/health").status,
                              (200, 503))
            # It refills.
            time.sleep(int(r.headers["retry-after"]) + 0.1)
            self.assertEqual(call(gw.port, "GET", "/status", t).status, 200)
            m = call(gw.port, "GET", "/metrics").body.decode()
            self.assertRegex(m, r"wa_gateway_rate_limited_total [1-9]")
        finally:
            self.assertEqual(gw.stop(), 0)


class SessionService(unittest.TestCase):
    """The session routes end to end, with fake-session registered in a
    store-svc of its own."""

    @classmethod
    def setUpClass(cls):
        cls.s = Stack()
        cls.s.start_store()
        cls.gw = cls.s.start_gateway()
        cls.fake = cls.s.start_session("fake-1")
        wait_until("/health with a session service",
                   lambda: call(cls.gw.port, "GET", "/health").status == 200)

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def test_1_health(self):
        b = call(self.gw.port, "GET", "/health").json()
        self.assertEqual(b["status"], "ok")
        self.assertEqual(b["sessionServices"], 1)

    def test_status_from_store_row(self):
        # Placed on the live fake-1: the row as its instance wrote it.
        self.assertEqual(buscall(self.s.store_url, "placement.resolve",
                                 "qruser")["instance"], "fake-1")
        buscall(self.s.store_url, "session.upsert", "qruser", {
            "status": "qr", "qrCode": "data:image/png;base64,AAAA",
            "phoneNumber": "+41791234567", "displayName": "Dr Q"})
        b = call(self.gw.port, "GET", "/status", token("qruser")).json()
        self.assertEqual(b["status"], "qr")
        self.assertEqual(b["qrCode"], "data:image/png;base64,AAAA")
        self.assertEqual(b["displayName"], "Dr Q")
        self.assertEqual(set(b), {"status", "phoneNumber", "displayName",
                                  "qrCode", "connectedAt", "lastActivity"})
        # The QR is shown only while scanning.
        buscall(self.s.store_url, "session.upsert", "qruser",
                {"status": "ready"})
        b = call(self.gw.port, "GET", "/status", token("qruser")).json()
        self.assertEqual(b["status"], "ready")
        self.assertIsNone(b["qrCode"])
        rows = call(self.gw.port, "GET", "/admin/sessions",
                    token("x", role="admin")).json()["sessions"]
        row = [s for s in rows if s["userId"] == "qruser"][0]
        self.assertEqual((row["status"], row["instance"], row["instanceAlive"]),
                         ("ready", "fake-1", True))

    def test_2_flow(self):
        t = token("doc1")
        r = call(self.gw.port, "GET", "/chats", t)
        assert_error(self, r, 409, "not_ready")
        r = call(self.gw.port, "POST", "/connect", t)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json(), {"status": "initializing"})
        r = call(self.gw.port, "POST", "/connect", t)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"status": "ready"})

        chats = call(self.gw.port, "GET", "/chats", t).json()["chats"]
        self.assertEqual(chats[0]["name"], "chat of doc1")  # user from token
        m = call(self.gw.port, "GET", "/messages/41791234567%40c.us?limit=7",
                 t).json()["messages"]
        self.assertEqual(m[0]["chatId"], "41791234567@c.us")
        self.assertEqual(m[0]["body"], "user=doc1 limit=7")
        m = call(self.gw.port, "GET", "/messages/41791234567@c.us", t).json()
        self.assertEqual(m["messages"][0]["body"], "user=doc1 limit=50")

        # /send is idempotent by X-Request-Id.
        h = {"X-Request-Id": "send-once-1"}
        a = call(self.gw.port, "POST", "/send", t,
                 {"chatId": "41791234567@c.us", "message": "hi",
                  "userId": "someone-else"}, headers=h)
        self.assertEqual(a.status, 200, a)
        b = call(self.gw.port, "POST", "/send", t,
                 {"chatId": "41791234567@c.us", "message": "hi"}, headers=h)
        self.assertEqual(a.json(), b.json())
        self.assertEqual(a.json()["id"], "sent-doc1-1")
        c = call(self.gw.port, "POST", "/send", t,
                 {"chatId": "41791234567@c.us", "message": "again"})
        self.assertEqual(c.json()["id"], "sent-doc1-2")

        r = call(self.gw.port, "GET", "/chat-by-phone?phone=+41791234567", t)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["chat"]["id"], "41791234567@c.us")
        self.assertEqual(r.json()["chat"]["unreadCount"], 2)
        r = call(self.gw.port, "GET", "/chat-by-phone?phone=%2B41790000000",
                 t)
        assert_error(self, r, 404, "not_found")

        # Another user sees nothing of doc1's.
        t2 = token("doc2")
        assert_error(self, call(self.gw.port, "GET", "/chats", t2), 409,
                     "not_ready")

        r = call(self.gw.port, "POST", "/disconnect", t)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"status": "disconnected"})
        assert_error(self, call(self.gw.port, "GET", "/chats", t), 409,
                     "not_ready")

    def test_3_diagnostics(self):
        d = call(self.gw.port, "GET", "/diagnostics", token("doc1")).json()
        inst = [i for i in d["instances"] if i["instance"] == "fake-1"]
        self.assertEqual(len(inst), 1)
        self.assertTrue(inst[0]["alive"])
        self.assertIsInstance(inst[0]["pingMs"], (int, float))
        self.assertNotIn("url", inst[0])  # topology: admins only
        d = call(self.gw.port, "GET", "/diagnostics", token("boss")).json()
        inst = [i for i in d["instances"] if i["instance"] == "fake-1"]
        self.assertEqual(inst[0]["url"], self.fake.url)

    def test_4_slow_backend_is_a_timeout(self):
        t = token("slow-doc")
        self.assertIn(call(self.gw.port, "POST", "/connect", t).status,
                      (200, 202))
        t0 = time.monotonic()
        r = call(self.gw.port, "POST", "/send", t,
                 {"chatId": "41791234567@c.us", "message": "sleep"})
        took = time.monotonic() - t0
        assert_error(self, r, 504, "timeout")
        self.assertLess(took, BUS_TIMEOUT_MS / 1000 + 1.0)

    def test_5_dead_instance_then_back(self):
        t = token("doc3")
        self.assertIn(call(self.gw.port, "POST", "/connect", t).status,
                      (200, 202))
        self.fake.kill()  # SIGKILL
        t0 = time.monotonic()
        r = call(self.gw.port, "GET", "/chats", t)
        took = time.monotonic() - t0
        self.assertIn(r.status, (503, 504), r)
        self.assertIn(r.json()["code"], ("unavailable", "timeout"))
        self.assertLess(took, BUS_TIMEOUT_MS / 1000 + 1.0)
        # The same instance comes back on the same url: the gateway's kept
        # socket reconnects by itself.
        type(self).fake = self.s.start_session("fake-1", url=self.fake.url)
        wait_until("the session routes answer again", lambda: call(
            self.gw.port, "POST", "/connect", t).status in (200, 202), 20)


class HealthAsksTheInstances(unittest.TestCase):
    """/health pings each session-svc store-svc lists as alive: kill -9 of
    the only one is a 503 at once, not 10 s later when the registry
    notices."""

    def test_kill_9_only_session_service(self):
        s = Stack()
        try:
            s.start_store()
            gw = s.start_gateway()
            fake = s.start_session("fake-h1")
            wait_until("/health 200", lambda: call(
                gw.port, "GET", "/health").status == 200)
            b = call(gw.port, "GET", "/health").json()
            self.assertEqual((b["sessionServices"],
                              b["sessionServicesListed"]), (1, 1))
            fake.kill()  # SIGKILL: still listed alive for up to 10 s
            t0 = time.monotonic()
            r = call(gw.port, "GET", "/health")
            took = time.monotonic() - t0
            self.assertEqual(r.status, 503, r)
            b = r.json()
            self.assertEqual(b["status"], "unavailable")
            self.assertEqual(b["store"], "ok")
            self.assertEqual(b["sessionServices"], 0)
            self.assertEqual(b["sessionServicesListed"], 1)
            self.assertLess(took, 1.5)
            # Back on the same url: 200 again, without waiting for the
            # registry.
            s.start_session("fake-h1", url=fake.url)
            wait_until("/health 200 again", lambda: call(
                gw.port, "GET", "/health").status == 200, 10)
            # Two instances, one dead: still 200, and no slower than the
            # ping timeout.
            second = s.start_session("fake-h2")
            wait_until("both answer", lambda: call(
                gw.port, "GET", "/health").json()["sessionServices"] == 2)
            second.kill()
            t0 = time.monotonic()
            r = call(gw.port, "GET", "/health")
            self.assertEqual(r.status, 200, r)
            self.assertEqual((r.json()["sessionServices"],
                              r.json()["sessionServicesListed"]), (1, 2))
            self.assertLess(time.monotonic() - t0, 1.5)
        finally:
            s.close()


class ServiceKey(unittest.TestCase):
    """A Supabase service_role key names no user: an admin for the admin
    routes, refused (403) wherever a user is acted for, here and in
    notifier-svc."""

    KEY = jwt({"iss": "supabase", "ref": "abc", "role": "service_role",
               "iat": int(time.time()), "exp": int(time.time()) + 3600})

    def test_admin_routes(self):
        r = call(GW.port, "GET", "/admin/sessions", self.KEY)
        self.assertEqual(r.status, 200, r)
        self.assertIsInstance(r.json()["sessions"], list)
        r = call(GW.port, "GET", "/diagnostics", self.KEY)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["store"]["status"], "ok")

    def test_user_routes_refused(self):
        for method, path, body in (
                ("GET", "/status", None), ("POST", "/connect", None),
                ("POST", "/disconnect", None), ("GET", "/chats", None),
                ("GET", "/messages/41791234567@c.us", None),
                ("POST", "/send", {"chatId": "41791234567@c.us",
                                   "message": "hi"}),
                ("GET", "/chat-by-phone?phone=%2B41791234567", None),
                ("GET", "/logs", None)):
            r = call(GW.port, method, path, self.KEY, body)
            assert_error(self, r, 403, "forbidden", "token names no user")

    def test_still_a_token(self):
        now = int(time.time())
        for claims in ({"role": "service_role", "exp": now - 120},
                       {"role": "service_role"},
                       {"role": "service_role", "exp": now + 60,
                        "is_anonymous": True},
                       {"role": "anon", "exp": now + 60},
                       {"role": "authenticated", "exp": now + 60}):
            r = call(GW.port, "GET", "/admin/sessions", jwt(claims))
            assert_error(self, r, 401, "unauthorized")
        r = call(GW.port, "GET", "/admin/sessions", jwt(
            {"role": "service_role", "exp": now + 60},
            key="another-secret-another-secret-123"))
        assert_error(self, r, 401, "unauthorized", "bad signature")

    def test_notifier_refuses_it(self):
        port = free_port()
        nt = Proc("notifier-svc", [os.path.join(BIN, "notifier-svc")], {
            "NOTIFIER_PORT": str(port), "JWT_SECRET": SECRET,
            "EVENTS_URL": "tcp://127.0.0.1:%d" % free_port()}, S.dir)
        S.procs.append(nt)
        wait_until("notifier-svc listening", lambda: (
            "listening on port %d," % port in nt.text() and
            (socket.create_connection(("127.0.0.1", port), 0.2).close()
             or True)))

        def upgrade(tok):
            req = ("GET /?token=%s HTTP/1.1\r\nHost: x\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n" % tok)
            return raw(port, req.encode(), timeout=2.0)

        status, head, body, _ = upgrade(self.KEY)
        self.assertEqual(status, 403, head)
        self.assertEqual(json.loads(body), {"error": "token names no user",
                                            "code": "forbidden"})
        status, head, _, _ = upgrade(token("nt-user"))
        self.assertEqual(status, 101, head)
        self.assertEqual(nt.stop(), 0)


class AdminSessionsPages(unittest.TestCase):
    """Without ?limit= every session comes back (store-svc pages of 500,
    followed by the gateway); with it one page; nextOffset says where to
    go on."""

    N = 523

    def test_every_session(self):
        s = Stack()
        try:
            s.start_store()
            gw = s.start_gateway()
            users = ["pg-%04d" % i for i in range(self.N)]
            todo = list(users)
            failed = []
            lock = threading.Lock()

            def writer():
                while True:
                    with lock:
                        if not todo:
                            return
                        u = todo.pop()
                    # session.upsert is idempotent: a loaded machine's
                    # timeout is retried.
                    for attempt in range(5):
                        try:
                            buscall(s.store_url, "session.upsert", u,
                                    {"status": "disconnected"}, 5000)
                            break
                        except RuntimeError as e:
                            if attempt == 4:
                                failed.append((u, str(e)))

            threads = [threading.Thread(target=writer) for _ in range(8)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            self.assertEqual(failed, [])
            boss = token("boss")
            b = call(gw.port, "GET", "/admin/sessions", boss).json()
            self.assertEqual([x["userId"] for x in b["sessions"]], users)
            self.assertEqual((b["offset"], b["nextOffset"]), (0, None))
            b = call(gw.port, "GET", "/admin/sessions?offset=500",
                     boss).json()
            self.assertEqual([x["userId"] for x in b["sessions"]],
                             users[500:])
            self.assertEqual((b["offset"], b["nextOffset"]), (500, None))
            # One page when asked for one; nextOffset when it came back
            # full.
            b = call(gw.port, "GET", "/admin/sessions?limit=500",
                     boss).json()
            self.assertEqual(len(b["sessions"]), 500)
            self.assertEqual(b["nextOffset"], 500)
            b = call(gw.port, "GET", "/admin/sessions?limit=20&offset=%d"
                     % (self.N - 20), boss).json()
            self.assertEqual([x["userId"] for x in b["sessions"]],
                             users[-20:])
            self.assertEqual(b["nextOffset"], self.N)
            b = call(gw.port, "GET", "/admin/sessions?limit=20&offset=%d"
                     % self.N, boss).json()
            self.assertEqual((b["sessions"], b["nextOffset"]), ([], None))
        finally:
            s.close()


class StoreCrash(unittest.TestCase):
    """kill -9 store-svc under traffic: the gateway answers 503 fast (the
    bus gives up on a peer with no connection, it does not wait out its
    timeout), recovers when store-svc is back on the same database, and
    every row acknowledged before the kill is still there."""

    def test_kill_and_recover(self):
        s = Stack()
        try:
            s.start_store()
            gw = s.start_gateway(RATE_LIMIT_RPS=100000,
                                 RATE_LIMIT_BURST=100000)
            tok = token("crash-user")
            acked = []
            stop = threading.Event()
            answers = []

            def writer():
                n = 0
                # At most 400 rows: /logs shows up to 500, all must fit.
                while not stop.is_set() and n < 400:
                    try:
                        r = buscall(s.store_url, "log.append", "crash-user",
                                    {"eventType": "message",
                                     "eventData": {"n": n}}, 1000)
                        acked.append(r["id"])
                    except Exception:
                        pass
                    n += 1

            def reader():
                while not stop.is_set():
                    t0 = time.monotonic()
                    try:
                        r = call(gw.port, "GET", "/status", tok, timeout=10)
                        answers.append((r.status, time.monotonic() - t0))
                    except Exception as e:
                        answers.append((repr(e), time.monotonic() - t0))

            threads = [threading.Thread(target=writer)] + \
                [threading.Thread(target=reader) for _ in range(3)]
            for th in threads:
                th.start()
            wait_until("some acknowledged rows", lambda: len(acked) >= 20)
            s.store.stop(signal.SIGKILL)
            killed_at = len(acked)
            time.sleep(2.0)
            during = list(answers)
            # While it is down: a quick 503, never a 504 after the bus
            # timeout, a hang or a 500.
            r = call(gw.port, "GET", "/status", tok)
            assert_error(self, r, 503, "unavailable")
            t0 = time.monotonic()
            r = call(gw.port, "GET", "/logs", tok)
            assert_error(self, r, 503, "unavailable")
            self.assertLess(time.monotonic() - t0, BUS_TIMEOUT_MS / 1000)
            h = call(gw.port, "GET", "/health")
            self.assertEqual(h.status, 503)
            self.assertNotEqual(h.json()["store"], "ok")

            s.start_store()  # same DB_PATH, same url
            wait_until("the gateway recovers", lambda: call(
                gw.port, "GET", "/status", tok).status == 200, 20)
            stop.set()
            for th in threads:
                th.join(30)
            # Requests in flight at the kill too: 503 before the timeout.
            bad = [(st, round(took, 3)) for st, took in during
                   if st not in (200, 503) or
                   took >= BUS_TIMEOUT_MS / 1000]
            self.assertEqual(bad, [], "%d answers" % len(during))
            self.assertTrue([1 for st, _ in during if st == 503])

            # Every acknowledged row is there.
            r = call(gw.port, "GET", "/logs?limit=500", tok)
            self.assertEqual(r.status, 200, r)
            have = {row["id"] for row in r.json()["logs"]}
            self.assertGreaterEqual(killed_at, 20)
            self.assertEqual([i for i in acked if i not in have], [])

            # And again after a clean restart of both.
            self.assertEqual(gw.stop(), 0)
            self.assertEqual(s.store.stop(), 0)
            s.start_store()
            gw = s.start_gateway()
            wait_until("restarted stack answers", lambda: call(
                gw.port, "GET", "/status", tok).status == 200)
            r = call(gw.port, "GET", "/logs?limit=500", tok)
            self.assertEqual({row["id"] for row in r.json()["logs"]}, have)
        finally:
            s.close()


class StoreSwap(unittest.TestCase):
    """The database replaced while the gateway runs (store-svc stopped, a
    backup restored): the same user's log may end at the same row id with
    other rows. The kept /logs body must not be taken for it."""

    def test_replaced_database(self):
        s = Stack()
        try:
            s.start_store()
            gw = s.start_gateway()
            tok = token("swap")

            def rows():
                r = call(gw.port, "GET", "/logs", tok)
                self.assertEqual(r.status, 200, r)
                return [x["eventData"] for x in r.json()["logs"]]

            for n in range(3):
                buscall(s.store_url, "log.append", "swap",
                        {"eventType": "message", "eventData": "old-%d" % n})
            self.assertEqual(rows(), ["old-2", "old-1", "old-0"])
            self.assertEqual(rows(), ["old-2", "old-1", "old-0"])
            # An idle gateway drops what it kept: keep it busy meanwhile,
            # so that the old body is still there to be refused.
            stop = threading.Event()

            def busy():
                while not stop.wait(0.2):
                    call(gw.port, "GET", "/metrics")

            poller = threading.Thread(target=busy)
            poller.start()
            try:
                self.assertEqual(s.store.stop(), 0)
                shutil.rmtree(os.path.dirname(s.db))
                s.start_store()
                for n in range(3):
                    buscall(s.store_url, "log.append", "swap",
                            {"eventType": "message",
                             "eventData": "new-%d" % n})
                wait_until("the gateway reads the new store", lambda: call(
                    gw.port, "GET", "/status", tok).status == 200, 20)
                self.assertEqual(
                    metric(gw.port, "wa_gateway_logs_cache_entries"), 1)
                self.assertEqual(rows(), ["new-2", "new-1", "new-0"])
            finally:
                stop.set()
                poller.join()
        finally:
            s.close()


class Shutdown(unittest.TestCase):
    def test_port_in_use_exits_2(self):
        with socket.socket() as taken:
            taken.bind(("0.0.0.0", 0))
            taken.listen()
            port = taken.getsockname()[1]
            r = subprocess.run([os.path.join(BIN, "gateway")], env={
                "PATH": os.environ["PATH"], "JWT_SECRET": SECRET,
                "PORT": str(port), "STORE_URL": S.store_url},
                capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertTrue(r.stderr.startswith(
            "gateway: cannot listen on port %d: " % port), r.stderr)
        self.assertIn("in use", r.stderr)  # CivetWeb's reason, not "failed"

    def test_sigterm_is_clean(self):
        gw = S.start_gateway("gateway-stop")
        self.assertEqual(call(gw.port, "GET", "/status", U1).status, 200)
        t0 = time.monotonic()
        self.assertEqual(gw.stop(signal.SIGTERM), 0)
        self.assertLess(time.monotonic() - t0, 10)

    def test_bad_config_exits_2(self):
        for env in ({}, {"JWT_SECRET": "short"},
                    {"JWT_SECRET": SECRET, "GATEWAY_MAX_BODY": "10"},
                    {"JWT_SECRET": SECRET, "GATEWAY_THREADS": "0"}):
            r = subprocess.run([os.path.join(BIN, "gateway")],
                               env={"PATH": os.environ["PATH"], **env},
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 2, (env, r.stderr))
            self.assertEqual(len(r.stderr.strip().splitlines()), 1)
            self.assertTrue(r.stderr.startswith("gateway: "))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: test_gateway.py <bin-dir> <tools-dir> [unittest "
                 "args]")
    BIN, TOOLS = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
