#!/usr/bin/python3
"""notifier-svc against real sockets: the real binary on free ports, events
published on the bus with buspub, clients speaking RFC 6455 (wsclient.py).

    test_notifier.py <notifier-svc binary> <buspub binary>

Each check prints "ok <name>" or "FAIL <name>: why"; the last line is
"N passed, N failed". Exit status 0 only when everything passed.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ports  # noqa: E402
import wsclient  # noqa: E402

HOST = "127.0.0.1"
SECRET = "0123456789abcdef0123456789abcdef-notifier-test"
ORIGIN = "http://crm.example"
NOTIFIER, BUSPUB = sys.argv[1], sys.argv[2]
WORK = tempfile.mkdtemp(prefix="nt-test-")
FRAME_KEYS = {"type", "data", "timestamp", "seq"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


free_port = ports.free_port


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims, secret=SECRET, alg="HS256"):
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    if alg == "none":
        return head + "." + body + "."
    sig = hmac.new(secret.encode(), (head + "." + body).encode(), hashlib.sha256).digest()
    return head + "." + body + "." + b64url(sig)


def token(user, ttl=600):
    return jwt({"sub": user, "exp": int(time.time()) + ttl})


class Notifier:
    """One notifier-svc process on free ports."""

    def __init__(self, **env):
        self.port = free_port()
        self.events_url = "tcp://%s:%d" % (HOST, free_port())
        self.env = env
        self.proc = None
        self.log = os.path.join(WORK, "notifier-%d.log" % self.port)

    def start(self):
        env = dict(os.environ)
        env.update({
            "JWT_SECRET": SECRET,
            "NOTIFIER_PORT": str(self.port),
            "EVENTS_URL": self.events_url,
            "ALLOWED_ORIGINS": ORIGIN,
            "NOTIFIER_MAX_CONN": "64",
            "LOG_LEVEL": "debug",
        })
        env.update({k: str(v) for k, v in self.env.items()})
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([NOTIFIER], env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("notifier-svc exited with %d" % self.proc.returncode)
            try:
                if self.http("/health")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("notifier-svc did not answer /health")

    def http(self, path):
        try:
            with urllib.request.urlopen("http://%s:%d%s" % (HOST, self.port, path), timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self):
        status, text = self.http("/metrics")
        assert status == 200, status
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def connect(self, user=None, since=None, path="/", tok=None, headers=None, rcvbuf=None):
        q = []
        if tok is None and user is not None:
            tok = token(user)
        if tok is not None:
            q.append("token=" + tok)
        if since is not None:
            q.append("since=%s" % since)
        url = path + ("?" + "&".join(q) if q else "")
        return wsclient.connect(HOST, self.port, url, headers=headers, rcvbuf=rcvbuf)

    def publish(self, user, type_, data, seq, count=1, interval_ms=0):
        args = [BUSPUB, self.events_url, user, type_, json.dumps(data), str(seq), str(count),
                str(interval_ms)]
        subprocess.run(args, check=True, timeout=60)

    def stop(self, expect_rc=0):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            # Never leave a process behind, even when the test fails.
            self.kill()
            raise AssertionError("notifier-svc still running 15 s after SIGTERM")
        assert rc == expect_rc, "notifier-svc exited with %d on SIGTERM" % rc

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=5)


def check_frame(f, type_, seq, data=None):
    assert set(f) == FRAME_KEYS, "frame keys %r" % sorted(f)
    assert f["type"] == type_, "type %r, want %r" % (f["type"], type_)
    assert f["seq"] == seq, "seq %r, want %r (%r)" % (f["seq"], seq, f)
    assert TIMESTAMP.match(f["timestamp"]), f["timestamp"]
    assert isinstance(f["data"], dict)
    if data is not None:
        assert f["data"] == data, "data %r, want %r" % (f["data"], data)


def expect_silence(ws, seconds=0.3):
    """No data frame within seconds (pings are answered and ignored)."""
    try:
        frame = ws.recv_frame(seconds)
    except TimeoutError:
        return
    raise AssertionError("unexpected frame: %r" % (frame,))


def wait_until(what, fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


# ---- tests -----------------------------------------------------------------

EVENTS = [
    ("status", {"status": "initializing"}),
    ("qr", {"qr": "2@AbC,key1,key2,secret", "qrDataUrl": "data:image/png;base64,iVBORw0KGgo="}),
    ("ready", {"phoneNumber": "+41791234567", "displayName": "Dr. Muster"}),
    ("message", {"id": "m1", "chatId": "41791112233@c.us", "from": "41791112233@c.us",
                 "to": "41791234567@c.us", "body": "hello", "timestamp": 1764150000,
                 "fromMe": False, "type": "chat"}),
    ("disconnected", {"reason": "logout"}),
]


def test_frames_and_isolation(nt):
    a = nt.connect("alice", headers={"Origin": ORIGIN})
    b = nt.connect("bob", path="/ws")
    for i, (type_, data) in enumerate(EVENTS):
        nt.publish("alice", type_, data, 100 + i)
    for i, (type_, data) in enumerate(EVENTS):
        check_frame(a.recv_json(), type_, 100 + i, data)
    expect_silence(b)
    nt.publish("bob", "status", {"status": "ready"}, 1)
    check_frame(b.recv_json(), "status", 1, {"status": "ready"})
    expect_silence(a)
    a.close()
    b.close()


def refused(nt, path, headers=None):
    status, hdrs, body, sock = wsclient.raw_upgrade(HOST, nt.port, path, headers)
    sock.close()
    assert status != 101 and "sec-websocket-accept" not in hdrs, "upgraded: %r" % hdrs
    return status, json.loads(body.decode()) if body else None


def test_refusals(nt):
    now = int(time.time())
    cases = [
        ("bad signature", "/?token=" + jwt({"sub": "u", "exp": now + 60}, secret="x" * 40), 401),
        ("expired", "/?token=" + jwt({"sub": "u", "exp": now - 3600}), 401),
        ("alg none", "/?token=" + jwt({"sub": "u", "exp": now + 60}, alg="none"), 401),
        ("alg HS512 header", "/?token=" + jwt({"sub": "u", "exp": now + 60}, alg="HS512"), 401),
        ("no exp", "/?token=" + jwt({"sub": "u"}), 401),
        ("garbage", "/?token=not-a-jwt", 401),
        ("missing", "/", 401),
        ("missing on /ws", "/ws", 401),
        ("empty", "/?token=", 401),
        ("too large", "/?token=" + "a" * 9000, 401),
        ("since not a number", "/?token=%s&since=abc" % token("u"), 400),
        ("since negative", "/?token=%s&since=-1" % token("u"), 400),
        ("since too big", "/?token=%s&since=99999999999999999999" % token("u"), 400),
    ]
    for name, path, want in cases:
        status, body = refused(nt, path)
        assert status == want, "%s: HTTP %d, want %d" % (name, status, want)
        assert body["code"] == {401: "unauthorized", 400: "bad_request"}[want], (name, body)
    status, body = refused(nt, "/?token=" + token("u"), {"Origin": "http://evil.example"})
    assert status == 403 and body["code"] == "forbidden", (status, body)
    # The token is checked even for a good Origin.
    status, _ = refused(nt, "/?token=bad", {"Origin": ORIGIN})
    assert status == 401
    # Authorization: Bearer for clients that can send it.
    ws = wsclient.connect(HOST, nt.port, "/", headers={"Authorization": "Bearer " + token("hdr")})
    ws.close()
    status, _ = refused(nt, "/", {"Authorization": "Bearer nope"})
    assert status == 401
    # A plain GET is not an upgrade.
    status, body = nt.http("/")
    assert status == 400, (status, body)
    assert nt.http("/nope")[0] == 404


def test_raw_401_status_line(nt):
    """The exact bytes: a 401 status line, and the socket never switches."""
    sock = socket.create_connection((HOST, nt.port), timeout=5)
    sock.sendall(wsclient.upgrade_request(HOST, nt.port, "/?token=eyJhbGciOiJub25lIn0.e30."))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "closed before a response"
        data += chunk
    sock.close()
    first = data.split(b"\r\n", 1)[0]
    assert first.startswith(b"HTTP/1.1 401 "), first
    assert b"101" not in first and b"Sec-WebSocket-Accept" not in data, data


def events_in(nt):
    return nt.metrics()["notifier_events_in_total"]


def test_replay_since(nt):
    before = events_in(nt)
    nt.publish("carol", "message", {"n": 1}, 1, count=10)
    wait_until("10 events in", lambda: events_in(nt) >= before + 10)
    ws = nt.connect("carol", since=4)
    for seq in range(5, 11):
        check_frame(ws.recv_json(), "message", seq)
    expect_silence(ws)
    nt.publish("carol", "status", {"status": "ready"}, 11)
    check_frame(ws.recv_json(), "status", 11)
    ws.close()
    # since = newest: nothing; since = 0: all of it.
    ws = nt.connect("carol", since=11)
    expect_silence(ws)
    ws.close()
    # since = 0 asks for everything: this notifier keeps 8 per user.
    ws = nt.connect("carol", since=0)
    check_frame(ws.recv_json(), "resync", 3, {"since": 0, "oldest": 4})
    assert [ws.recv_json()["seq"] for _ in range(8)] == list(range(4, 12))
    ws.close()


def test_resync(nt):
    # This notifier keeps 8 events per user.
    resyncs = nt.metrics()["notifier_resyncs_total"]
    before = events_in(nt)
    nt.publish("dave", "message", {"x": 1}, 1, count=20)
    wait_until("dave's events", lambda: events_in(nt) >= before + 20)
    ws = nt.connect("dave", since=3)
    f = ws.recv_json()
    check_frame(f, "resync", 12, {"since": 3, "oldest": 13})
    assert [ws.recv_json()["seq"] for _ in range(8)] == list(range(13, 21))
    expect_silence(ws)
    ws.close()
    m = nt.metrics()
    assert m["notifier_resyncs_total"] == resyncs + 1, m["notifier_resyncs_total"]


def test_client_messages(nt):
    ws = nt.connect("erin")
    ws.send_text("hello, server")  # ignored
    nt.publish("erin", "status", {"status": "qr"}, 1)
    check_frame(ws.recv_json(), "status", 1)
    ws.send_text("x" * 5000)  # over the 4 KiB limit
    try:
        ws.recv_json()
        raise AssertionError("oversize message did not close")
    except wsclient.Closed as e:
        assert e.code == 1009, e
    wait_until("oversize counted",
               lambda: nt.metrics()['notifier_drops_total{reason="client_message_too_big"}'] == 1)


def test_ping(nt):
    # This notifier pings after 500 ms of silence; wsclient answers.
    ws = nt.connect("frank")
    try:
        ws.recv_frame(1.6)
    except TimeoutError:
        pass
    assert ws.pings >= 1, "no ping in 1.6 s"
    nt.publish("frank", "status", {"status": "ready"}, 1)
    check_frame(ws.recv_json(), "status", 1)
    ws.close()


def test_limits():
    nt = Notifier(NOTIFIER_MAX_CONN=3, NOTIFIER_MAX_CONN_PER_USER=2).start()
    try:
        a1, a2 = nt.connect("u1"), nt.connect("u1")
        try:
            nt.connect("u1")
            raise AssertionError("third connection of u1 accepted")
        except wsclient.Refused as e:
            assert e.status == 429 and json.loads(e.body)["code"] == "rate_limited", e
        b = nt.connect("u2")
        try:
            nt.connect("u3")
            raise AssertionError("fourth connection accepted")
        except wsclient.Refused as e:
            assert e.status == 503, e
        a1.close()
        wait_until("slot freed", lambda: nt.metrics()["notifier_connections"] == 2)
        c = nt.connect("u3")
        m = nt.metrics()
        assert m['notifier_refused_total{reason="user_limit"}'] == 1
        assert m['notifier_refused_total{reason="server_limit"}'] == 1
        for ws in (a2, b, c):
            ws.close()
        nt.stop()
    finally:
        nt.proc.kill()


def test_slow_client_dropped():
    nt = Notifier(NOTIFIER_QUEUE_FRAMES=64, NOTIFIER_QUEUE_BYTES=262144, NOTIFIER_REPLAY=16,
                  NOTIFIER_REPLAY_BYTES=65536).start()
    try:
        stalled = nt.connect("gina", rcvbuf=4096)
        healthy = nt.connect("gina")
        got, errors = [], []

        def reader():
            try:
                while len(got) < 300:
                    got.append(healthy.recv_json(10)["seq"])
            except Exception as e:  # reported below
                errors.append(e)

        t = threading.Thread(target=reader)
        t.start()
        blob = "x" * 16000
        nt.publish("gina", "message", {"body": blob}, 1, count=300, interval_ms=1)
        t.join(30)
        assert not errors, errors
        assert got == list(range(1, 301)), "healthy client missed frames: %d" % len(got)
        m = nt.metrics()
        assert m['notifier_drops_total{reason="overflow"}'] == 1, m
        # The stalled client reads again: what was in flight, then 1008.
        frames, code = 0, "none"
        try:
            while True:
                stalled.recv_json(10)
                frames += 1
        except wsclient.Closed as e:
            code = e.code
        assert code == 1008, "stalled client closed with %r after %d frames" % (code, frames)
        assert frames < 300
        healthy.close()
        nt.stop()
    finally:
        nt.proc.kill()


def test_kill_and_restart():
    nt = Notifier()
    nt.start()
    try:
        ws = nt.connect("hank")
        nt.publish("hank", "status", {"status": "ready"}, 1, count=5)
        assert [ws.recv_json()["seq"] for _ in range(5)] == [1, 2, 3, 4, 5]
        nt.kill()
        try:
            ws.recv_json(5)
            raise AssertionError("frame after SIGKILL")
        except (wsclient.Closed, ConnectionError):
            pass
        # Restarted on the same ports: its buffer holds what was published
        # since, so a client that reconnects with since loses none of that.
        nt.start()
        nt.publish("hank", "message", {"n": 6}, 6, count=3)
        wait_until("6..8 in", lambda: nt.metrics()["notifier_events_in_total"] >= 3)
        ws = nt.connect("hank", since=5)
        assert [ws.recv_json()["seq"] for _ in range(3)] == [6, 7, 8]
        nt.publish("hank", "status", {"status": "ready"}, 9)
        assert ws.recv_json()["seq"] == 9
        ws.close()
        # Older than the new buffer (1..5 died with the old process): resync.
        ws = nt.connect("hank", since=2)
        check_frame(ws.recv_json(), "resync", 5, {"since": 2, "oldest": 6})
        assert [ws.recv_json()["seq"] for _ in range(4)] == [6, 7, 8, 9]
        ws.close()
        nt.stop()
    finally:
        nt.proc.kill()


def test_sigterm_going_away():
    nt = Notifier().start()
    try:
        ws = nt.connect("ivan")
        t0 = time.monotonic()
        nt.proc.send_signal(signal.SIGTERM)
        try:
            ws.recv_json(10)
            raise AssertionError("no close frame")
        except wsclient.Closed as e:
            assert e.code == 1001, e
        assert nt.proc.wait(timeout=15) == 0
        assert time.monotonic() - t0 < 10
    finally:
        if nt.proc.poll() is None:  # a failure above: leave nothing running
            nt.kill()


def test_metrics_counts(nt):
    m = nt.metrics()
    assert m["notifier_connections"] == 0, m["notifier_connections"]
    assert m["notifier_events_in_total"] >= 5 + 1 + 11 + 20
    assert m["notifier_frames_out_total"] >= 5 + 1 + 7 + 17
    assert m["notifier_replays_total"] >= 4
    assert m["notifier_resyncs_total"] == 2
    assert m['notifier_refused_total{reason="unauthorized"}'] >= 12
    assert m['notifier_refused_total{reason="forbidden_origin"}'] == 1
    assert m['notifier_refused_total{reason="bad_request"}'] >= 3


def test_no_token_in_logs(nt):
    with open(nt.log, "rb") as f:
        log = f.read()
    assert b"eyJ" not in log, "a token reached the log"
    assert b"token=" not in log, "a URI with its query reached the log"


def main():
    shared = Notifier(NOTIFIER_REPLAY=8, NOTIFIER_QUEUE_FRAMES=64, NOTIFIER_WS_TIMEOUT_MS=500)
    shared.start()
    tests = [
        ("frames carry exact fields, rising seq, to their user only",
         lambda: test_frames_and_isolation(shared)),
        ("bad, expired, alg-none, missing tokens: 401; bad Origin: 403; bad since: 400",
         lambda: test_refusals(shared)),
        ("raw socket: 401 status line and no upgrade", lambda: test_raw_401_status_line(shared)),
        ("since replays exactly the missed frames, then live", lambda: test_replay_since(shared)),
        ("since older than the buffer: resync first", lambda: test_resync(shared)),
        ("client messages ignored; oversize closes with 1009", lambda: test_client_messages(shared)),
        ("idle connections are pinged", lambda: test_ping(shared)),
        ("metrics count connections, events, frames, replays, refusals",
         lambda: test_metrics_counts(shared)),
        ("per-user and total connection limits: 429 and 503", test_limits),
        ("a stalled client is dropped (1008), a healthy one gets everything",
         test_slow_client_dropped),
        ("SIGKILL and restart: reconnect with since loses nothing still buffered",
         test_kill_and_restart),
        ("SIGTERM closes sockets with 1001 and exits 0", test_sigterm_going_away),
    ]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            print("ok   " + name, flush=True)
            passed += 1
        except Exception as e:  # one test's failure must not hide the others
            print("FAIL %s: %s" % (name, e), flush=True)
            traceback.print_exc()
            failed += 1
    try:
        shared.stop()
        test_no_token_in_logs(shared)
        print("ok   clean SIGTERM; no token or query string in the log")
        passed += 1
    except Exception as e:
        print("FAIL clean SIGTERM / log check: %s" % e)
        failed += 1
    if shared.proc.poll() is None:
        shared.proc.kill()
    print("%d passed, %d failed" % (passed, failed))
    if failed:
        for name in os.listdir(WORK):
            print("---- " + name)
            with open(os.path.join(WORK, name), errors="replace") as f:
                print(f.read()[-6000:])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
