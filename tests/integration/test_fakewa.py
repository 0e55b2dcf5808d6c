#!/usr/bin/python3
"""test_fakewa.py - fakewa driven by real headless Chromium.

    test_fakewa.py <path/to/fakewa>

Starts fakewa on a free port and drives Chromium against it over the
DevTools protocol on a pipe (--remote-debugging-pipe: fd 3 carries commands
in, fd 4 replies out, each JSON message ending in NUL) - the way session-svc
drives the real site. Page-side events reach the test the same way the
adapter's do: through a Runtime.addBinding callback, installed by a script
added with Page.addScriptToEvaluateOnNewDocument. User text only ever
travels as JSON values (Runtime.callFunctionOn arguments), never as source.

Python 3 standard library only. Prints one "ok - ..." line per check.
"""
import base64
import datetime
import fcntl
import json
import os
import re
import select
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ports  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PHONE = "41791234567"
NAME = "Dr. Fake Ärztin"
SENDER = "41765550123"
REF_INTERVAL_MS = 1500
IDLE_AFTER_MS = 4500
BINDING = "__fakewaTest"
MODULES = [
    "WAWebCollections", "WAWebSocketModel", "WAWebConnModel", "WAWebCmd",
    "WAWebUserPrefsMeUser", "WAWebSendMsgChatAction", "WAWebFindChatAction",
    "WAWebWidFactory", "WAWebQueryExistsJob", "WAWebChatLoadMessages",
    "WAWebUpdateUnreadChatAction", "WAWebChatStateBridge",
]

# Bodies that must survive byte for byte: quotes, backslashes, markup that
# would close a script, line breaks (also U+2028/9, which once broke JS
# string literals), emoji with modifiers, template syntax.
NASTY = ("He said \"hi\" and 'bye' \\ C:\\path\\n </script><script>alert(1)"
         "</script> <b>&amp;</b>\nline two\r\n\ttab 😀👍🏽 ünïcödé ∑ "
         "\u2028\u2029 ${x} `tick` \\u0041 end")
LONG = ("abcdé😀" * 1000)[:4096]
MAX = "x" * 65536
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

# Runs at the start of every document: waits for the app like an adapter
# does, then reports its events through the binding.
HOOKS = r"""
(() => {
  const emit = o => { try { window.%s(JSON.stringify(o)); } catch (e) {} };
  const wait = setInterval(() => {
    if (typeof window.require !== 'function' || !window.Debug) return;
    clearInterval(wait);
    const C = require('WAWebCollections');
    const S = require('WAWebSocketModel').Socket;
    const N = require('WAWebConnModel').Conn;
    const Cmd = require('WAWebCmd').Cmd;
    const div = () => { const d = document.querySelector('div[data-ref]');
                        return d ? d.getAttribute('data-ref') : null; };
    emit({ev: 'boot', state: S.state, version: window.Debug.VERSION,
          href: location.href});
    C.Msg.on('add', m => { if (m.isNewMsg) emit({ev: 'add',
      id: m.id._serialized, type: m.type, isNewMsg: m.isNewMsg,
      fromMe: m.id.fromMe, body: m.body, t: m.t}); });
    C.Msg.on('change:type', m => emit({ev: 'type', id: m.id._serialized,
      type: m.type, body: m.body}));
    C.Msg.on('change:ack', (m, ack) => emit({ev: 'ack',
      id: m.id._serialized, ack}));
    S.on('change:state', (s, v) => emit({ev: 'state', state: v,
      ref: N.ref || null, div: div()}));
    S.on('change:hasSynced', (s, v) => emit({ev: 'hasSynced', value: v}));
    N.on('change:ref', (c, v) => emit({ev: 'ref', ref: v, div: div()}));
    Cmd.on('logout', () => emit({ev: 'logout'}));
  }, 10);
})();
""" % BINDING


class Failure(Exception):
    pass


def ok(msg):
    print("ok -", msg, flush=True)


def check(cond, msg):
    if not cond:
        raise Failure(msg)
    ok(msg)


free_port = ports.free_port


class Fakewa:
    def __init__(self, binary, workdir):
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(workdir, "fakewa.log")
        env = dict(os.environ, FAKEWA_PORT=str(self.port),
                   FAKEWA_REF_INTERVAL_MS=str(REF_INTERVAL_MS),
                   FAKEWA_IDLE_AFTER_MS=str(IDLE_AFTER_MS), LOG_LEVEL="debug")
        log = open(self.log_path, "ab")
        self.pid = os.posix_spawn(binary, [binary], env, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, log.fileno(), 2),
        ])
        log.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.http("GET", "/_fake/pages")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise Failure("fakewa did not answer within 10 s")
            time.sleep(0.05)

    def http(self, method, path, body=None, raw=None):
        data = raw if raw is not None else (
            json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data,
                                     method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def pages(self):
        status, pages = self.http("GET", "/_fake/pages")
        assert status == 200, pages
        return pages

    def devices(self, phone="%2B" + PHONE):
        """GET /_fake/devices?phone=: the phone's "Linked devices"."""
        status, devices = self.http("GET", "/_fake/devices?phone=" + phone)
        if status != 200:
            raise Failure("devices: %d %s" % (status, devices))
        return devices

    def stop(self):
        """SIGTERM; the exit status, or None if it had to be killed."""
        if self.pid is None:
            return 0
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid = None
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        self.pid = None
        return None


class Browser:
    """Chromium with a DevTools pipe, attached to one page target."""

    def __init__(self, profile, log_path):
        cmd_r, cmd_w = os.pipe()    # we write commands, Chromium reads fd 3
        resp_r, resp_w = os.pipe()  # Chromium writes fd 4, we read
        # Move the child's ends out of the way of 3 and 4 before dup2.
        child_in = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(resp_w, fcntl.F_DUPFD_CLOEXEC, 10)
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        log_fd = fcntl.fcntl(log, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (cmd_r, resp_w, log):
            os.close(fd)
        argv = [CHROMIUM, "--headless=new", "--remote-debugging-pipe",
                "--user-data-dir=" + profile, "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage"]
        if os.geteuid() == 0:
            argv.append("--no-sandbox")
        argv.append("about:blank")
        self.pid = os.posix_spawn(CHROMIUM, argv, dict(os.environ),
                                  file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1),
            (os.POSIX_SPAWN_DUP2, log_fd, 2),
            (os.POSIX_SPAWN_DUP2, child_in, 3),
            (os.POSIX_SPAWN_DUP2, child_out, 4),
        ])
        for fd in (child_in, child_out, log_fd):
            os.close(fd)
        self.wfd, self.rfd = cmd_w, resp_r
        self.buf = b""
        self.next_id = 0
        self.replies = {}
        self.bindings = []      # payloads of Runtime.bindingCalled
        self.navigations = []   # main-frame URLs
        self.session = None
        self.attach()

    # -- the wire --

    def _write(self, msg):
        data = json.dumps(msg).encode() + b"\0"
        while data:
            n = os.write(self.wfd, data)
            data = data[n:]

    def _read_one(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([self.rfd], [], [], left)
            if r:
                chunk = os.read(self.rfd, 1 << 20)
                if not chunk:
                    raise Failure("DevTools pipe closed: Chromium exited")
                self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\0")
        msg = json.loads(raw)
        if "id" in msg:
            self.replies[msg["id"]] = msg
        elif msg.get("method") == "Runtime.bindingCalled":
            if msg["params"]["name"] == BINDING:
                self.bindings.append(json.loads(msg["params"]["payload"]))
        elif msg.get("method") == "Page.frameNavigated":
            frame = msg["params"]["frame"]
            if not frame.get("parentId"):
                self.navigations.append(frame["url"])
        return True

    def call(self, method, params=None, session=True, timeout=30):
        self.next_id += 1
        mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        self._write(msg)
        deadline = time.monotonic() + timeout
        while mid not in self.replies:
            if not self._read_one(deadline):
                raise Failure("DevTools: no answer to %s" % method)
        reply = self.replies.pop(mid)
        if "error" in reply:
            raise Failure("DevTools: %s: %s" % (method, reply["error"]))
        return reply["result"]

    def pump(self, seconds):
        deadline = time.monotonic() + seconds
        while self._read_one(deadline):
            pass

    # -- the page --

    def attach(self):
        targets = self.call("Target.getTargets", session=False)["targetInfos"]
        pages = [t for t in targets if t["type"] == "page"]
        if pages:
            target = pages[0]["targetId"]
        else:
            target = self.call("Target.createTarget", {"url": "about:blank"},
                               session=False)["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Runtime.addBinding", {"name": BINDING})
        self.call("Page.addScriptToEvaluateOnNewDocument", {"source": HOOKS})

    def navigate(self, url):
        self.call("Page.navigate", {"url": url})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr,
                                           "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise Failure("JS: %s" % d.get("exception", {}).get(
                "description", d.get("text")))
        return r["result"].get("value")

    def call_fn(self, fn, *args):
        """fn(...args) in the page; args travel as JSON values."""
        glob = self.call("Runtime.evaluate", {"expression": "globalThis"})
        r = self.call("Runtime.callFunctionOn", {
            "functionDeclaration": fn,
            "objectId": glob["result"]["objectId"],
            "arguments": [{"value": a} for a in args],
            "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise Failure("JS: %s" % d.get("exception", {}).get(
                "description", d.get("text")))
        return r["result"].get("value")

    def wait_for(self, expr, what, timeout=20):
        """Poll expr until it is truthy (errors during navigation retry)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                v = self.eval(expr)
                if v:
                    return v
            except Failure as e:
                last = e
            self.pump(0.1)
        raise Failure("timed out waiting for %s (%s)" % (what, last))

    def wait_binding(self, pred, what, since=0, timeout=20):
        deadline = time.monotonic() + timeout
        i = since
        while True:
            while i < len(self.bindings):
                if pred(self.bindings[i]):
                    return i, self.bindings[i]
                i += 1
            if time.monotonic() > deadline:
                raise Failure("timed out waiting for %s" % what)
            self._read_one(min(deadline, time.monotonic() + 0.2))

    def mark(self):
        return len(self.bindings)

    def close(self):
        """Browser.close, as session-svc stops a browser holding a login."""
        if self.pid is None:
            return 0
        try:
            self.call("Browser.close", session=False, timeout=5)
        except Failure:
            pass
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                status = os.waitstatus_to_exitcode(st)
                break
            time.sleep(0.05)
        if status is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.wfd)
        os.close(self.rfd)
        self.pid = None
        return status


# ---- the checks ----------------------------------------------------------

SEND_FN = """async function (to, body) {
  const C = require('WAWebCollections');
  const wid = require('WAWebWidFactory').createWid(to);
  const chat = C.Chat.get(wid) ||
      (await require('WAWebFindChatAction').findOrCreateLatestChat(wid)).chat;
  const [msgP, resultP] =
      require('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, {body, type: 'chat'});
  const m = await msgP;
  const result = await resultP;
  return {id: m.id._serialized, t: m.t, result, ack: m.ack, body: m.body,
          inMsg: C.Msg.get(m.id._serialized) === m,
          inChat: chat.msgs.get(m.id._serialized) === m};
}"""

STORAGE_FN = """async function () {
  const ls = localStorage.getItem('WAWebLogin');
  const db = await new Promise((res, rej) => {
    const r = indexedDB.open('wawc', 1);
    r.onupgradeneeded = () => r.result.createObjectStore('user');
    r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
  const idb = await new Promise((res, rej) => {
    const q = db.transaction('user').objectStore('user').get('login');
    q.onsuccess = () => res(q.result); q.onerror = () => rej(q.error); });
  db.close();
  return {ls: ls ? JSON.parse(ls) : null, idb: idb || null};
}"""

DROP_IDB_FN = """async function () {
  const db = await new Promise((res, rej) => {
    const r = indexedDB.open('wawc', 1);
    r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
  await new Promise((res, rej) => {
    const tx = db.transaction('user', 'readwrite');
    tx.objectStore('user').delete('login');
    tx.oncomplete = res; tx.onerror = () => rej(tx.error); });
  db.close();
}"""


def boot(b, fw, what):
    mark = b.mark()
    b.navigate(fw.base + "/")
    _, ev = b.wait_binding(lambda e: e["ev"] == "boot", what, since=mark)
    return mark, ev


def current_qr(b, fw):
    """The QR the page shows, agreeing with /_fake/pages (retry if a
    rotation falls between the two reads)."""
    for _ in range(5):
        div = b.eval("document.querySelector('div[data-ref]') && "
                     "document.querySelector('div[data-ref]')"
                     ".getAttribute('data-ref')")
        pages = fw.pages()
        if div and any(p["ref"] == div for p in pages):
            return div
        b.pump(0.1)
    raise Failure("div[data-ref] never matched /_fake/pages")


def scan(b, fw, name=NAME):
    for _ in range(5):
        qr = current_qr(b, fw)
        status, body = fw.http("POST", "/_fake/scan",
                               {"ref": qr, "phone": "+" + PHONE, "name": name})
        if status == 200:
            return body
        check(status == 404, "scan answers 404 only for a stale QR")
    raise Failure("could not scan")


def wait_connected(b, since, what):
    b.wait_binding(lambda e: e["ev"] == "state" and e["state"] == "CONNECTED",
                   what, since=since)


def account_info(b):
    return b.eval("""(() => {
      const N = require('WAWebConnModel').Conn.serialize();
      const me = require('WAWebUserPrefsMeUser').getMaybeMePnUser();
      return {wid: N.wid && N.wid._serialized, pushname: N.pushname,
              platform: N.platform, me: me && me._serialized,
              meUser: me && me.user, meServer: me && me.server,
              state: require('WAWebSocketModel').Socket.state,
              synced: require('WAWebSocketModel').Socket.hasSynced};
    })()""")


def check_surface(b):
    ev_version = b.wait_for("window.Debug && window.Debug.VERSION",
                            "Debug.VERSION")
    check(isinstance(ev_version, str) and ev_version.startswith("2.3000.")
          and ev_version[7:].isdigit(), "Debug.VERSION is 2.3000.<n>: %s"
          % ev_version)
    kinds = b.call_fn("""function (names) {
      return names.map(n => { const m = require(n);
        return [n, typeof m, Object.keys(m).map(k => k + ':' + typeof m[k])]; });
    }""", MODULES)
    check(all(k[1] == "object" for k in kinds),
          "require() returns an object for each of the %d WAWEB modules"
          % len(MODULES))
    members = {k[0]: set(k[2]) for k in kinds}
    want = {
        "WAWebCollections": {"Chat:object", "Msg:object", "Contact:object"},
        "WAWebSocketModel": {"Socket:object"},
        "WAWebConnModel": {"Conn:object"},
        "WAWebCmd": {"Cmd:object"},
        "WAWebUserPrefsMeUser": {"getMaybeMePnUser:function"},
        "WAWebSendMsgChatAction": {"addAndSendMsgToChat:function"},
        "WAWebFindChatAction": {"findOrCreateLatestChat:function"},
        "WAWebWidFactory": {"createWid:function"},
        "WAWebQueryExistsJob": {"queryWidExists:function"},
        "WAWebChatLoadMessages": {"loadEarlierMsgs:function"},
        "WAWebUpdateUnreadChatAction": {"sendSeen:function"},
        "WAWebChatStateBridge": {"sendChatStateComposing:function",
                                 "sendChatStateRecording:function",
                                 "sendChatStatePaused:function"},
    }
    for mod, need in want.items():
        check(need <= members[mod], "%s has %s" % (mod, ", ".join(sorted(need))))
    err = b.eval("""(() => { try { require('WAWebNoSuchModule'); return null; }
                     catch (e) { return e instanceof Error ? e.message : 'not an Error'; } })()""")
    check(err is not None and "WAWebNoSuchModule" in err,
          "require() of an unknown module throws: %s" % err)
    same = b.eval("require('WAWebCollections') === require('WAWebCollections')"
                  " && typeof require('WAWebCollections').Chat.get === 'function'"
                  " && typeof require('WAWebCollections').Msg.getModelsArray === 'function'"
                  " && typeof require('WAWebCollections').Msg.on === 'function'"
                  " && typeof require('WAWebCollections').Msg.off === 'function'"
                  " && typeof require('WAWebCmd').Cmd.refreshQR === 'function'"
                  " && typeof require('WAWebConnModel').Conn.serialize === 'function'")
    check(same, "collections have get/getModelsArray/on/off; Cmd.refreshQR; "
          "Conn.serialize")


def check_qr(b, fw):
    b.wait_for("require('WAWebSocketModel').Socket.state === 'UNPAIRED'",
               "Socket.state UNPAIRED")
    ok("Socket.state reaches UNPAIRED")
    qr = current_qr(b, fw)
    fields = qr.split(",")
    check(len(fields) == 5, "div[data-ref] holds five fields: %s" % qr)
    ref, noise, ident, adv, platform = fields
    check(ref.startswith("2@") and len(ref) > 20, "ref looks like 2@<base64>")
    for name, k in (("noise", noise), ("identity", ident), ("adv", adv)):
        check(len(base64.b64decode(k, validate=True)) == 32,
              "%s key is 32 bytes of base64" % name)
    check(platform == "WEB", "platform field is WEB")
    # Conn.ref and the div read together (a rotation may come between reads).
    pair = b.eval("[require('WAWebConnModel').Conn.ref, "
                  "document.querySelector('div[data-ref]').getAttribute('data-ref')]")
    check(pair[1].split(",")[0] == pair[0], "Conn.ref is the QR's first field")
    pages = fw.pages()
    check(len(pages) == 1 and pages[0]["state"] == "UNPAIRED"
          and pages[0]["phone"] is None, "/_fake/pages shows one UNPAIRED page")
    ok("/_fake/pages' ref is the full QR string div[data-ref] shows")

    mark = b.mark()
    first = b.eval("require('WAWebConnModel').Conn.ref")
    _, ev = b.wait_binding(lambda e: e["ev"] == "ref" and e["ref"] != first,
                           "change:ref", since=mark, timeout=REF_INTERVAL_MS / 1000 + 5)
    check(ev["div"] and ev["div"].split(",")[0] == ev["ref"]
          and ev["div"].split(",")[1:] == fields[1:],
          "the ref rotates (change:ref), div[data-ref] already updated, same keys")

    # No scan: UNPAIRED_IDLE, the QR goes away; refreshQR brings a new one.
    _, ev = b.wait_binding(lambda e: e["ev"] == "state"
                           and e["state"] == "UNPAIRED_IDLE",
                           "UNPAIRED_IDLE", since=mark,
                           timeout=IDLE_AFTER_MS / 1000 + 5)
    check(ev["div"] is None, "UNPAIRED_IDLE after FAKEWA_IDLE_AFTER_MS, "
          "div[data-ref] removed")
    pages = fw.pages()
    check(pages[0]["state"] == "UNPAIRED_IDLE" and pages[0]["ref"] is None,
          "/_fake/pages shows UNPAIRED_IDLE without a ref")
    status, body = fw.http("POST", "/_fake/scan",
                           {"ref": qr, "phone": PHONE, "name": NAME})
    check(status == 404 and body["code"] == "not_found",
          "scanning an expired QR answers 404 not_found")
    mark = b.mark()
    b.eval("require('WAWebCmd').Cmd.refreshQR()")
    _, ev = b.wait_binding(lambda e: e["ev"] == "state"
                           and e["state"] == "UNPAIRED", "UNPAIRED again",
                           since=mark)
    check(ev["div"] and ev["div"].split(",")[0] == ev["ref"],
          "Cmd.refreshQR() shows a new QR (UNPAIRED)")


def check_control_validation(fw):
    bad = [
        ({"ref": "x"}, "missing phone"),
        ({"ref": "x", "phone": "abc"}, "phone not digits"),
        ({"ref": "x", "phone": "0041791234567"}, "phone with leading 0"),
        ({"ref": "x", "phone": "4179123456789012"}, "phone too long"),
        ({"ref": 1, "phone": PHONE}, "ref not a string"),
        ({"ref": "x", "phone": PHONE, "extra": "y"}, "unknown field"),
        ({"ref": "", "phone": PHONE}, "empty ref"),
        ({"ref": "x", "phone": PHONE, "name": ""}, "empty name"),
    ]
    for body, what in bad:
        status, reply = fw.http("POST", "/_fake/scan", body)
        check(status == 400 and reply.get("code") == "bad_request"
              and reply.get("error"), "scan refuses %s: 400" % what)
    raw = [
        (b"{", "bad_request", "truncated JSON"),
        (b"[]", "bad_request", "an array"),
        (b'{"ref":"x","phone":"41791234567"} x', "bad_request", "trailing bytes"),
        (b'{"ref":"\xff","phone":"41791234567"}', "invalid_utf8", "invalid UTF-8"),
        (b'{"ref":"x","ref":"y","phone":"41791234567"}', "bad_request", "a duplicate key"),
    ]
    for data, code, what in raw:
        status, reply = fw.http("POST", "/_fake/scan", raw=data)
        check(status == 400 and reply.get("code") == code,
              "scan refuses %s: 400 %s" % (what, code))
    status, reply = fw.http("POST", "/_fake/scan",
                            {"ref": "2@nope,a,b,c,WEB", "phone": PHONE})
    check(status == 404 and reply["code"] == "not_found",
          "scan of a QR no page shows: 404")
    status, reply = fw.http("GET", "/_fake/scan")
    check(status == 405 and reply["code"] == "method_not_allowed",
          "GET /_fake/scan: 405")
    status, reply = fw.http("POST", "/_fake/incoming",
                            {"phone": "41799999999", "from": SENDER, "body": "x"})
    check(status == 404, "incoming to an account that never scanned: 404")
    status, reply = fw.http("GET", "/_fake/sent?phone=41799999999")
    check(status == 404, "sent of an unknown account: 404")
    status, reply = fw.http("GET", "/_fake/sent")
    check(status == 400, "sent without ?phone=: 400")
    status, reply = fw.http("POST", "/_fake/logout", {"phone": "41799999999"})
    check(status == 404, "logout of an unknown account: 404")
    status, reply = fw.http("GET", "/_fake/devices?phone=%2B" + PHONE)
    check(status == 404 and reply["code"] == "not_found" and reply["error"],
          "devices of an account that never scanned: 404 not_found")
    for query, what in (("", "without ?phone="), ("?phone=", "an empty phone"),
                        ("?phone=abc", "a phone not digits"),
                        ("?phone=4179123456789012", "a phone too long")):
        status, reply = fw.http("GET", "/_fake/devices" + query)
        check(status == 400 and reply["code"] == "bad_request"
              and reply["error"], "devices %s: 400" % what)
    status, reply = fw.http("POST", "/_fake/devices?phone=" + PHONE, {})
    check(status == 405 and reply["code"] == "method_not_allowed",
          "POST /_fake/devices: 405")
    status, reply = fw.http("POST", "/_fake/logout", {"phone": 41791234567})
    check(status == 400, "logout with a number, not a string: 400")
    status, reply = fw.http("GET", "/_fake/nothing")
    check(status == 404 and reply["code"] == "not_found", "unknown route: 404")


def check_login(b, fw):
    mark = b.mark()
    body = scan(b, fw)
    check(body["phone"] == PHONE, "scan with the shown QR: 200")
    i_sync, _ = b.wait_binding(lambda e: e["ev"] == "hasSynced"
                               and e["value"] is True, "change:hasSynced",
                               since=mark)
    i_conn, _ = b.wait_binding(lambda e: e["ev"] == "state"
                               and e["state"] == "CONNECTED", "CONNECTED",
                               since=mark)
    states = [e["state"] for e in b.bindings[mark:] if e["ev"] == "state"]
    check(i_sync < i_conn and "PAIRING" in states,
          "after the scan: PAIRING, change:hasSynced, then CONNECTED (%s)"
          % " -> ".join(states))
    info = account_info(b)
    check(info["wid"] == PHONE + "@c.us" and info["pushname"] == NAME
          and info["platform"], "Conn.serialize(): wid, pushname, platform")
    check(info["me"] == PHONE + "@c.us" and info["meUser"] == PHONE
          and info["meServer"] == "c.us",
          "getMaybeMePnUser() -> {user, server, _serialized}")
    pages = fw.pages()
    check(pages[0]["state"] == "CONNECTED" and pages[0]["phone"] == PHONE
          and pages[0]["ref"] is None, "/_fake/pages shows CONNECTED + phone")
    store = b.call_fn(STORAGE_FN)
    check(store["ls"] and store["idb"] and store["ls"]["phone"] == PHONE
          and store["ls"] == store["idb"],
          "the login is kept in both Local Storage and IndexedDB")
    devices = fw.devices()
    check(len(devices) == 1 and set(devices[0]) == {"linkedAt", "online"}
          and devices[0]["online"] is True,
          "/_fake/devices: one device, online: %s" % devices)
    utc = datetime.timezone.utc
    age = datetime.datetime.now(utc) - datetime.datetime.strptime(
        devices[0]["linkedAt"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=utc)
    check(ISO_MS.fullmatch(devices[0]["linkedAt"])
          and datetime.timedelta(seconds=-5) < age
          < datetime.timedelta(seconds=60),
          "linkedAt is ISO-8601 UTC with milliseconds, just now")
    check(store["ls"]["token"] not in json.dumps(devices),
          "/_fake/devices does not show the device token")
    check(fw.devices(PHONE) == devices, "?phone= with and without the +")
    check(b.eval("document.querySelector('div[data-ref]') === null"),
          "no QR once logged in")


def check_history(b):
    chats = b.eval("""(() => require('WAWebCollections').Chat.getModelsArray()
      .map(c => ({id: c.id._serialized, name: c.name, title: c.formattedTitle,
                  isGroup: c.isGroup, unread: c.unreadCount, t: c.t,
                  n: c.msgs.getModelsArray().length,
                  ser: Object.keys(c.serialize())})))()""")
    check(len(chats) >= 3, "Chat.getModelsArray(): %d chats" % len(chats))
    check(any(c["isGroup"] and c["id"].endswith("@g.us") for c in chats)
          and any(not c["isGroup"] and c["id"].endswith("@c.us") for c in chats),
          "users (@c.us) and a group (@g.us)")
    check(all(c["name"] and c["title"] and c["n"] > 0 for c in chats),
          "each chat has a name, formattedTitle and loaded messages")
    check([c["t"] for c in chats] == sorted((c["t"] for c in chats),
                                            reverse=True),
          "chats sorted newest first")
    check(all({"id", "name", "isGroup", "unreadCount", "t"} <= set(c["ser"])
              for c in chats), "chat.serialize() has id, name, isGroup, "
          "unreadCount, t")
    msg = b.eval("""(() => { const c = require('WAWebCollections').Chat
        .getModelsArray().find(c => !c.isGroup);
      const m = c.msgs.last(); const s = m.serialize();
      return {ser: JSON.parse(JSON.stringify(s)), viaGet:
        require('WAWebCollections').Msg.get(m.id._serialized) === m,
        viaKey: require('WAWebCollections').Msg.get(m.id) === m,
        chat: c.id._serialized,
        contact: !!require('WAWebCollections').Contact.get(c.id)}; })()""")
    s = msg["ser"]
    check({"id", "body", "type", "t", "from", "to", "fromMe", "isNewMsg",
           "ack"} <= set(s), "msg.serialize() has id, body, type, t, from, "
          "to, fromMe, isNewMsg, ack")
    ser = s["id"]["_serialized"]
    check(ser == "%s_%s_%s" % (str(s["id"]["fromMe"]).lower(), msg["chat"],
                               s["id"]["id"]),
          "message id serializes as <fromMe>_<chatId>_<msgId>: %s" % ser)
    check(s["type"] == "chat" and isinstance(s["t"], int)
          and s["isNewMsg"] is False, "history messages: type chat, t, "
          "isNewMsg false")
    check(msg["viaGet"] and msg["viaKey"] and msg["contact"],
          "Msg.get(serialized or key) and Contact.get(wid)")

    big = max(chats, key=lambda c: c["n"] if not c["isGroup"] else 0)
    r = b.call_fn("""async function (chatId) {
      const C = require('WAWebCollections');
      const L = require('WAWebChatLoadMessages');
      const chat = C.Chat.get(chatId);
      const initial = chat.msgs.getModelsArray();
      const rounds = [];
      for (let i = 0; i < 10; i++) {
        const oldest = chat.msgs.first().t;
        const got = await L.loadEarlierMsgs(chat, chat.msgs);
        rounds.push({n: got.length, older: got.every(m => m.t <= oldest),
                     isNew: got.some(m => m.isNewMsg),
                     inMsg: got.every(m => C.Msg.get(m.id) === m)});
        if (!got.length) break;
      }
      const all = chat.msgs.getModelsArray();
      return {initial: initial.length, rounds, total: all.length,
              done: chat.msgs.msgLoadState.noEarlierMsgs,
              sorted: all.every((m, i) => i === 0 || all[i - 1].t <= m.t)};
    }""", big["id"])
    check(r["rounds"][0]["n"] > 0 and all(x["older"] for x in r["rounds"]),
          "loadEarlierMsgs pages older messages in (%s)"
          % [x["n"] for x in r["rounds"]])
    check(r["rounds"][-1]["n"] == 0 and r["done"],
          "loadEarlierMsgs ends with [] and msgLoadState.noEarlierMsgs")
    check(not any(x["isNew"] for x in r["rounds"])
          and all(x["inMsg"] for x in r["rounds"]),
          "earlier messages: isNewMsg false, also in Collections.Msg")
    check(r["sorted"] and r["total"] > r["initial"],
          "chat.msgs stays sorted: %d -> %d messages" % (r["initial"],
                                                         r["total"]))


def incoming(b, fw, body, sender=SENDER):
    mark = b.mark()
    status, reply = fw.http("POST", "/_fake/incoming",
                            {"phone": PHONE, "from": "+" + sender,
                             "body": body})
    if status != 200:
        raise Failure("incoming: %d %s" % (status, reply))
    mid = reply["id"]
    i_add, add = b.wait_binding(lambda e: e["ev"] == "add"
                                and e["id"] == mid, "Msg add", since=mark)
    i_type, typ = b.wait_binding(lambda e: e["ev"] == "type"
                                 and e["id"] == mid, "change:type", since=mark)
    return mid, add, typ, i_add < i_type


def check_incoming(b, fw):
    mid, add, typ, order = incoming(b, fw, NASTY)
    check(mid.startswith("false_%s@c.us_" % SENDER),
          "/_fake/incoming answers the serialized id: %s" % mid)
    check(add["type"] == "ciphertext" and add["isNewMsg"] is True
          and add["fromMe"] is False and add["body"] != NASTY,
          "Msg 'add' with isNewMsg, first as ciphertext")
    check(order and typ["type"] == "chat",
          "then change:type to chat")
    check(typ["body"] == NASTY,
          "body byte-exact: quotes, backslashes, </script>, newlines, "
          "U+2028, emoji")
    for body, what in ((LONG, "4096 characters"), (MAX, "65536 bytes")):
        _, _, typ, _ = incoming(b, fw, body)
        check(typ["body"] == body, "body byte-exact: %s" % what)
    status, reply = fw.http("POST", "/_fake/incoming",
                            {"phone": PHONE, "from": SENDER,
                             "body": MAX + "x"})
    check(status == 400 and reply["code"] == "bad_request",
          "a body of 65537 bytes: 400")
    for body, what in (({"phone": PHONE, "from": SENDER, "body": ""},
                        "an empty body"),
                       ({"phone": PHONE, "from": SENDER, "body": 5},
                        "a body that is not a string"),
                       ({"phone": PHONE, "from": "abc", "body": "x"},
                        "a bad from"),
                       ({"phone": PHONE, "from": SENDER + "@g.us",
                         "body": "x"}, "a group as from"),
                       ({"phone": PHONE, "body": "x"}, "no from")):
        status, reply = fw.http("POST", "/_fake/incoming", body)
        check(status == 400 and reply["code"] == "bad_request",
              "incoming refuses %s: 400" % what)
    status, reply = fw.http(
        "POST", "/_fake/incoming",
        raw=b'{"phone":"41791234567","from":"41765550123","body":"a\\u0000b"}')
    check(status == 400, "incoming refuses a body with \\u0000: 400")
    status, reply = fw.http(
        "POST", "/_fake/incoming",
        raw=b'{"phone":"41791234567","from":"41765550123","body":"\xed\xa0\x80"}')
    check(status == 400 and reply["code"] == "invalid_utf8",
          "incoming refuses a UTF-16 surrogate in UTF-8: 400 invalid_utf8")
    chat = b.eval("(() => { const c = require('WAWebCollections').Chat.get("
                  "'%s@c.us'); return {unread: c.unreadCount, "
                  "top: require('WAWebCollections').Chat.getModelsArray()[0]"
                  ".id._serialized}; })()" % SENDER)
    check(chat["unread"] >= 3 and chat["top"] == SENDER + "@c.us",
          "the chat counts unread messages and moves to the top")
    return mid


def check_send(b, fw):
    contact = b.eval("require('WAWebCollections').Chat.getModelsArray()"
                     ".find(c => !c.isGroup && c.id.user !== '%s')"
                     ".id._serialized" % SENDER)
    mark = b.mark()
    r1 = b.call_fn(SEND_FN, contact, NASTY)
    check(r1["result"]["messageSendResult"] == "OK" and r1["ack"] >= 1
          and r1["inMsg"] and r1["inChat"] and r1["body"] == NASTY,
          "addAndSendMsgToChat -> [msgPromise, sendResultPromise], OK, ack>=1")
    check(r1["id"].startswith("true_%s_" % contact),
          "sent id serializes as true_<chat>_<id>")
    b.wait_binding(lambda e: e["ev"] == "add" and e["id"] == r1["id"]
                   and e["fromMe"] and e["type"] == "chat", "Msg add (sent)",
                   since=mark)
    b.wait_binding(lambda e: e["ev"] == "ack" and e["id"] == r1["id"]
                   and e["ack"] == 2, "change:ack 2", since=mark)
    ok("Msg 'add' for the sent message, then change:ack to 2 (delivered)")
    new_to = "41765559876@c.us"
    r2 = b.call_fn(SEND_FN, new_to, LONG)
    check(r2["result"]["messageSendResult"] == "OK",
          "findOrCreateLatestChat + send to a number without a chat")
    status, sent = fw.http("GET", "/_fake/sent?phone=%2B" + PHONE)
    check(status == 200 and isinstance(sent, list), "GET /_fake/sent: 200 []")
    by_id = {s["id"]: s for s in sent}
    s1, s2 = by_id.get(r1["id"]), by_id.get(r2["id"])
    check(s1 and s1["to"] == contact and s1["body"] == NASTY
          and s1["timestamp"] == r1["t"],
          "/_fake/sent has the message byte-exact, with to and timestamp")
    check(s2 and s2["to"] == new_to and s2["body"] == LONG,
          "/_fake/sent has the 4096-character message byte-exact")
    status, sent2 = fw.http("GET", "/_fake/sent?phone=" + PHONE)
    check(sent2 == sent, "?phone= works with and without the +")

    ex = b.call_fn("""async function (a, b) {
      const Q = require('WAWebQueryExistsJob'), W = require('WAWebWidFactory');
      const x = await Q.queryWidExists(W.createWid(a));
      const y = await Q.queryWidExists(W.createWid(b));
      let bad = null;
      try { W.createWid('not a wid'); } catch (e) { bad = e.message; }
      return {x: x && x.wid._serialized, y, bad};
    }""", "41765554321@c.us", "41765550000@c.us")
    check(ex["x"] == "41765554321@c.us" and ex["y"] is None,
          "queryWidExists: {wid} on WhatsApp, null otherwise")
    # A "not on WhatsApp" number that writes is on WhatsApp after all.
    status, reply = fw.http("POST", "/_fake/incoming",
                            {"phone": PHONE, "from": "41765550000",
                             "body": "hello"})
    check(status == 200 and "id" in reply,
          "incoming from a 0000 number is taken (%r)" % (reply,))
    wrote = b.call_fn("""async function (a) {
      const Q = require('WAWebQueryExistsJob'), W = require('WAWebWidFactory');
      const x = await Q.queryWidExists(W.createWid(a));
      return x && x.wid._serialized;
    }""", "41765550000@c.us")
    check(wrote == "41765550000@c.us",
          "and queryWidExists then finds it (%r)" % (wrote,))
    check(ex["bad"] is not None, "createWid throws on a malformed id")
    seen = b.call_fn("""async function (id) {
      const C = require('WAWebCollections');
      const chat = C.Chat.get(id);
      const before = chat.unreadCount;
      await require('WAWebUpdateUnreadChatAction').sendSeen({chat});
      const S = require('WAWebChatStateBridge');
      await S.sendChatStateComposing(chat.id);
      await S.sendChatStateRecording(chat.id);
      await S.sendChatStatePaused(chat.id);
      return [before, chat.unreadCount];
    }""", SENDER + "@c.us")
    check(seen[0] > 0 and seen[1] == 0,
          "sendSeen({chat}) clears unreadCount; chat states resolve")
    return r1


def main():
    if len(sys.argv) != 2:
        print("usage: test_fakewa.py <fakewa>", file=sys.stderr)
        return 2
    if not os.access(CHROMIUM, os.X_OK):
        print("not ok - no Chromium at %s" % CHROMIUM)
        return 1
    work = tempfile.mkdtemp(prefix="fakewa-test-")
    profile = os.path.join(work, "profile")
    chrome_log = os.path.join(work, "chromium.log")
    fw = b = None
    try:
        fw = Fakewa(sys.argv[1], work)
        ok("fakewa started on port %d" % fw.port)
        check(fw.pages() == [], "/_fake/pages: no page yet")
        check_control_validation(fw)

        # -- first launch: unpaired, QR, scan, history, messages --
        b = Browser(profile, chrome_log)
        _, ev = boot(b, fw, "the app boots")
        check(ev["state"] in ("UNLAUNCHED", "OPENING"),
              "Debug.VERSION appears while Socket is %s" % ev["state"])
        check_surface(b)
        check_qr(b, fw)
        check_login(b, fw)
        check_history(b)
        check_incoming(b, fw)
        sent = check_send(b, fw)

        # -- Browser.close, a message while away, relaunch: logged in --
        status = b.close()
        check(status == 0, "Browser.close: Chromium exits 0")
        deadline = time.monotonic() + 5
        while fw.pages() and time.monotonic() < deadline:
            time.sleep(0.05)
        check(fw.pages() == [], "/_fake/pages empty once the browser closed")
        linked = fw.devices()
        check(len(linked) == 1 and linked[0]["online"] is False,
              "/_fake/devices: still linked, not online with no page")
        status, reply = fw.http("POST", "/_fake/incoming",
                                {"phone": PHONE, "from": SENDER,
                                 "body": "while you were away"})
        away = reply["id"]
        b = Browser(profile, chrome_log)
        mark, _ = boot(b, fw, "relaunch")
        wait_connected(b, mark, "CONNECTED after relaunch")
        states = [e["state"] for e in b.bindings[mark:] if e["ev"] == "state"]
        check("UNPAIRED" not in states,
              "relaunch on the same profile: logged in without a scan (%s)"
              % " -> ".join(states))
        info = account_info(b)
        check(info["wid"] == PHONE + "@c.us" and info["synced"]
              and info["pushname"] == NAME, "account info after relaunch")
        check(fw.devices() == [dict(linked[0], online=True)],
              "/_fake/devices: the same device, online again")
        _, add = b.wait_binding(lambda e: e["ev"] == "add"
                                and e["id"] == away, "the missed message",
                                since=mark)
        _, typ = b.wait_binding(lambda e: e["ev"] == "type"
                                and e["id"] == away, "its change:type",
                                since=mark)
        check(add["isNewMsg"] and add["type"] == "ciphertext"
              and typ["body"] == "while you were away",
              "a message sent while the browser was closed arrives as new")
        hist = b.eval("(() => { const m = require('WAWebCollections').Msg"
                      ".get('%s'); return m && m.body; })()" % sent["id"])
        check(hist == NASTY, "the history holds the sent message byte-exact")

        # Either store alone is a login; the other is repaired.
        b.eval("localStorage.removeItem('WAWebLogin')")
        mark, _ = boot(b, fw, "reload without Local Storage")
        wait_connected(b, mark, "CONNECTED from IndexedDB alone")
        store = b.call_fn(STORAGE_FN)
        check(store["ls"] == store["idb"] and store["idb"],
              "IndexedDB alone logs in; Local Storage is rewritten")
        b.call_fn(DROP_IDB_FN)
        mark, _ = boot(b, fw, "reload without IndexedDB")
        wait_connected(b, mark, "CONNECTED from Local Storage alone")
        store = b.call_fn(STORAGE_FN)
        check(store["ls"] == store["idb"] and store["ls"],
              "Local Storage alone logs in; IndexedDB is rewritten")

        # -- logout from the phone --
        mark = b.mark()
        nav = len(b.navigations)
        status, reply = fw.http("POST", "/_fake/logout", {"phone": "+" + PHONE})
        check(status == 200 and reply["pages"] == 1,
              "POST /_fake/logout: 200, one page told")
        b.wait_binding(lambda e: e["ev"] == "logout", "Cmd logout",
                       since=mark)
        ok("Cmd fires 'logout'")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                "post_logout=1" in u for u in b.navigations[nav:]):
            b.pump(0.1)
        check(any("post_logout=1" in u for u in b.navigations[nav:]),
              "the page navigates to /?post_logout=1")
        b.wait_for("window.require && require('WAWebSocketModel')"
                   ".Socket.state === 'UNPAIRED'", "UNPAIRED after logout")
        store = b.call_fn(STORAGE_FN)
        check(store["ls"] is None and store["idb"] is None,
              "logout clears Local Storage and IndexedDB")
        check(fw.devices() == [],
              "/_fake/devices after the phone's logout: 200 []")
        b.close()
        b = Browser(profile, chrome_log)
        mark, _ = boot(b, fw, "relaunch after logout")
        b.wait_for("require('WAWebSocketModel').Socket.state === 'UNPAIRED'",
                   "UNPAIRED after relaunch")
        check(not any(e["ev"] == "hasSynced" for e in b.bindings[mark:])
              and account_info(b).get("wid") is None,
              "relaunch after logout: unpaired again, no account")

        # -- unlinked while the browser was closed --
        mark = b.mark()
        scan(b, fw)
        wait_connected(b, mark, "CONNECTED after a new scan")
        ok("a new scan logs in again")
        b.close()
        status, reply = fw.http("POST", "/_fake/logout", {"phone": PHONE})
        check(status == 200 and reply["pages"] == 0,
              "logout with no page open: 200, no page told")
        b = Browser(profile, chrome_log)
        nav = len(b.navigations)
        mark, _ = boot(b, fw, "relaunch after an unlink while away")
        b.wait_binding(lambda e: e["ev"] == "logout", "Cmd logout",
                       since=mark)
        b.wait_for("location.search.includes('post_logout=1') && "
                   "window.require && require('WAWebSocketModel')"
                   ".Socket.state === 'UNPAIRED'", "UNPAIRED post_logout")
        check(not any(e["ev"] == "state" and e["state"] == "CONNECTED"
                      for e in b.bindings[mark:]),
              "a login unlinked while away: Cmd logout, post_logout=1, "
              "UNPAIRED, never CONNECTED")

        # -- SIGTERM with a page open --
        status = fw.stop()
        check(status == 0, "fakewa exits 0 on SIGTERM with a page connected")
        b.wait_for("['TIMEOUT', 'OPENING'].includes("
                   "require('WAWebSocketModel').Socket.state)",
                   "the page notices")
        ok("the page sees its socket drop (TIMEOUT/OPENING)")
        b.close()
        b = None
        print("all fakewa checks passed")
        return 0
    except Failure as e:
        print("not ok - %s" % e)
        for name in ("fakewa.log", "chromium.log"):
            path = os.path.join(work, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    tail = f.readlines()[-25:]
                print("--- last lines of %s ---\n%s" % (name, "".join(tail)))
        return 1
    finally:
        if b is not None:
            b.close()
        if fw is not None:
            fw.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
