#!/usr/bin/python3
"""The live page (GET /) used by a person, in a real browser, against the
full stack with fakewa.

    test_livepage.py <bin-dir> [<screenshot-dir>]

HTTP first: GET / carries the Content-Security-Policy, /app.js and
/app.css their content types; ETag and If-None-Match give 304; POST / is
405; no token is needed; the page has no inline script or style and its
script never builds markup from strings.

Then a separate headless Chromium (DevTools over --remote-debugging-pipe,
test_fakewa.py's client) opens
http://127.0.0.1:<gw>/?token=<jwt>&ws=ws://127.0.0.1:<notifier>/ and the
test acts as a user, through the DOM only: the token leaves the address bar
and stays in sessionStorage; Connect (found by id, clicked) brings the QR
code as a data:image/png <img>; fakewa's phone scans it; the status becomes
ready and the chats are listed; a chat is opened; an incoming message
(markup in it stays text) appears live, without a reload; text typed into
the send box and sent arrives at fakewa byte-exact and shows once; after a
notifier restart the page reconnects and keeps receiving; Disconnect
clears the session; a bad token is refused; no script error and no CSP
violation happened. A screenshot of the page with a chat open is written
to <screenshot-dir>/livepage.png for a person to look at.

Python 3 standard library only. Prints one "ok - ..." line per check.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import stack  # noqa: E402
import test_fakewa  # noqa: E402
from stack import http, wait_until  # noqa: E402

PASSED = 0
FAILED = 0

PHONE = "41792220001"
NAME = "Dr Page <b>Ärztin</b>"
CSP_NEEDED = ["default-src 'self'", "connect-src 'self' ws: wss:",
              "img-src 'self' data:", "script-src 'self'", "style-src 'self'"]

# Collected in the page before its own scripts run (DevTools-injected
# scripts are not subject to the page's CSP): uncaught errors and CSP
# violations, and a marker that a reload would lose.
PAGE_HOOKS = r"""
window.__lpErrors = [];
window.addEventListener('error', e => window.__lpErrors.push(
  'error: ' + (e.message || e.type)));
window.addEventListener('unhandledrejection', e => window.__lpErrors.push(
  'rejection: ' + String(e.reason)));
document.addEventListener('securitypolicyviolation', e =>
  window.__lpErrors.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI));
"""


def ok(msg):
    global PASSED
    PASSED += 1
    print("ok - " + msg, flush=True)


def check(cond, msg):
    global FAILED
    if not cond:
        FAILED += 1
        print("not ok - " + msg, flush=True)
        raise AssertionError("not ok - " + msg)
    ok(msg)


class Page(test_fakewa.Browser):
    """test_fakewa's DevTools client on one tab, without fakewa's hooks."""

    def attach(self):
        targets = self.call("Target.getTargets", session=False)["targetInfos"]
        pages = [t for t in targets if t["type"] == "page"]
        target = pages[0]["targetId"] if pages else self.call(
            "Target.createTarget", {"url": "about:blank"},
            session=False)["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Page.addScriptToEvaluateOnNewDocument",
                  {"source": PAGE_HOOKS})
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 860, "deviceScaleFactor": 1,
                   "mobile": False})

    def wait(self, expr, what, timeout=30):
        try:
            return self.wait_for(expr, what, timeout)
        except test_fakewa.Failure as e:
            check(False, str(e))

    def text(self, elem_id):
        return self.call_fn("id => document.getElementById(id).textContent",
                            elem_id)

    def click(self, elem_id):
        """A user's click on the element with that id (must be enabled)."""
        r = self.call_fn("""id => { const b = document.getElementById(id);
            if (!b) return 'missing'; if (b.disabled) return 'disabled';
            b.dispatchEvent(new MouseEvent('click', {bubbles: true,
                                                     cancelable: true}));
            return 'clicked'; }""", elem_id)
        check(r == "clicked", "click #%s (%s)" % (elem_id, r))

    def errors(self):
        return self.eval("window.__lpErrors")


def check_http(st):
    r = http("GET", st.gw("/"))
    h = {k.lower(): v for k, v in r.headers.items()}
    check(r.status == 200 and h.get("content-type") ==
          "text/html; charset=utf-8", "GET / without a token: 200 text/html")
    csp = h.get("content-security-policy", "")
    dirs = [d.strip() for d in csp.split(";")]
    check(all(d in dirs for d in CSP_NEEDED) and
          "frame-ancestors 'none'" in dirs,
          "GET / has the strict Content-Security-Policy (%s)" % csp)
    check(h.get("referrer-policy") == "no-referrer" and
          h.get("x-content-type-options") == "nosniff",
          "GET /: Referrer-Policy no-referrer, nosniff")
    check(h.get("cache-control") == "no-cache" and
          h.get("etag", "").startswith('"'),
          "GET /: Cache-Control no-cache with a strong ETag")
    html = r.raw.decode()
    check('src="/app.js"' in html and 'href="/app.css"' in html and
          "<script>" not in html and "style=" not in html and
          "<style" not in html and
          not re.search(r"<[^>]*\son[a-z]+\s*=", html),
          "index.html: only /app.js and /app.css, no inline script, style "
          "or handlers")

    for path, ctype in (("/app.js", "text/javascript; charset=utf-8"),
                        ("/app.css", "text/css; charset=utf-8")):
        r = http("GET", st.gw(path))
        h = {k.lower(): v for k, v in r.headers.items()}
        check(r.status == 200 and h.get("content-type") == ctype and
              h.get("cache-control") == "no-cache" and r.raw,
              "GET %s: 200 %s" % (path, ctype))
        etag = h.get("etag")
        r2 = http("GET", st.gw(path), headers={"If-None-Match": etag})
        check(r2.status == 304 and not r2.raw and
              r2.headers.get("ETag") == etag,
              "GET %s with If-None-Match: 304, no body" % path)
        r3 = http("GET", st.gw(path), headers={"If-None-Match": '"other"'})
        check(r3.status == 200, "GET %s with a stale tag: 200" % path)
        for inm in ('"other", W/' + etag, "*"):
            r3 = http("GET", st.gw(path), headers={"If-None-Match": inm})
            check(r3.status == 304, "GET %s, If-None-Match: %s: 304"
                  % (path, inm))
        if path == "/app.js":
            js = r.raw.decode()
            check(not any(x in js for x in ("innerHTML", "outerHTML",
                                            "insertAdjacentHTML",
                                            "document.write", "eval(")),
                  "app.js never turns strings into markup or code")
    r = http("POST", st.gw("/"), body={})
    check(r.status == 405 and "GET" in r.headers.get("Allow", ""),
          "POST /: 405 with Allow: GET")
    r = http("GET", st.gw("/openapi.json"))
    paths = r.json["paths"]
    check(all(p in paths and paths[p]["get"]["security"] == []
              for p in ("/", "/app.js", "/app.css")),
          "openapi.json describes /, /app.js, /app.css as public")


def decode_png_qr(data_url, work):
    """The string in a PNG data URL by zbarimg, or None without zbarimg."""
    if not shutil.which("zbarimg"):
        return None
    path = os.path.join(work, "page-qr.png")
    with open(path, "wb") as f:
        f.write(base64.b64decode(data_url.split(",", 1)[1]))
    r = subprocess.run(["zbarimg", "--raw", "-q", path], capture_output=True)
    return r.stdout.decode().strip() if r.returncode == 0 else ""


def scan_from_page(st, page, work):
    """Scan the QR code the page shows, as the phone would."""
    for _ in range(10):
        src = page.eval("document.getElementById('qr').getAttribute('src')")
        refs = [p["ref"] for p in http("GET", st.fake("/_fake/pages")).json
                if p.get("ref")]
        qr = decode_png_qr(src or "", work)
        if qr is None:
            qr = refs[-1] if refs else None
        if qr not in refs:
            time.sleep(0.5)  # rotating: the page gets the new one
            continue
        r = http("POST", st.fake("/_fake/scan"),
                 body={"ref": qr, "phone": PHONE, "name": NAME})
        if r.status == 200:
            return qr
        time.sleep(0.5)
    check(False, "the QR the page shows could be scanned")


def message_bodies(page):
    return page.eval("[...document.querySelectorAll('#messages li')]"
                     ".map(li => [li.classList.contains('me'), "
                     "li.querySelector('.body').textContent])")


def run(bindir, outdir, work):
    st = stack.Stack(bindir, work, {"FAKEWA_REF_INTERVAL_MS": "20000"})
    origin = "http://127.0.0.1:%d" % st.ports["gw"]
    st.env["ALLOWED_ORIGINS"] = origin
    st.start_all(fakewa=True)
    page = None
    try:
        check_http(st)
        tok = stack.token("page-user-1")
        page = Page(os.path.join(work, "page-profile"),
                    os.path.join(work, "page-chromium.log"))
        ws = "ws://127.0.0.1:%d/" % st.ports["nt"]
        page.navigate("%s/?token=%s&ws=%s" % (origin, tok,
                                              urllib.parse.quote(ws, "")))
        page.wait("document.readyState === 'complete' && "
                  "document.getElementById('status').textContent === "
                  "'disconnected'", "status disconnected")
        ok("the page loads and shows the status: disconnected")
        loc = page.eval("[location.href, sessionStorage.getItem("
                        "'wa-server.token'), localStorage.length, "
                        "document.cookie, history.length]")
        check(tok not in loc[0] and "token" not in loc[0] and
              "ws=" in loc[0], "the token left the address bar (%s)" % loc[0])
        check(loc[1] == tok and loc[2] == 0 and loc[3] == "",
              "the token is in sessionStorage only")
        page.wait("document.getElementById('ws-state').textContent === "
                  "'live'", "WebSocket live")
        ok("the page's WebSocket to the notifier is open (origin %s)"
           % origin)
        page.eval("window.__lpMarker = 42")

        page.click("connect")
        page.wait("(() => { const i = document.getElementById('qr'); "
                  "return !document.getElementById('qr-box').hidden && "
                  "(i.getAttribute('src') || '').startsWith("
                  "'data:image/png;base64,') && i.complete && "
                  "i.naturalWidth > 0; })()", "QR image", 90)
        check(page.text("status") == "qr",
              "after Connect the page shows status qr and the QR <img> "
              "with a data:image/png src, decoded by the browser")
        qr = scan_from_page(st, page, work)
        ok("the phone scanned the page's QR code (%s...)" % qr[:12])
        page.wait("document.getElementById('status').textContent === "
                  "'ready'", "status ready", 60)
        check(page.text("account") == NAME + " · +" + PHONE and
              page.eval("document.getElementById('qr-box').hidden"),
              "status ready, account shown as text, QR hidden")
        n = page.wait("document.querySelectorAll('#chats li').length",
                      "chats listed", 30)
        check(n >= 3, "the chats are listed (%d)" % n)

        # Open the first one-to-one chat, as a user clicks it.
        chat = page.eval("[...document.querySelectorAll('#chats .chat')]"
                         ".map(b => b.dataset.id)"
                         ".find(id => id.endsWith('@c.us'))")
        page.call_fn("id => [...document.querySelectorAll('#chats .chat')]"
                     ".find(b => b.dataset.id === id).click()", chat)
        page.wait("document.querySelectorAll('#messages li').length > 0",
                  "history of the chat")
        check(page.eval("!document.getElementById('send').disabled"),
              "opening chat %s shows its messages and enables sending" % chat)

        sender = chat.split("@")[0]
        body = ("live <img src=x onerror=\"window.__pwned=1\"> </script> "
                "\"q\" \\ ü 😀\nsecond line")
        r = http("POST", st.fake("/_fake/incoming"),
                 body={"phone": PHONE, "from": sender, "body": body})
        check(r.status == 200, "fakewa delivers an incoming message")
        page.call_fn("""async b => { for (let i = 0; i < 250; i++) {
            if ([...document.querySelectorAll('#messages .body')]
                  .some(e => e.textContent === b)) return true;
            await new Promise(r => setTimeout(r, 100)); }
            return false; }""", body)
        got = message_bodies(page)
        check([False, body] in got,
              "the incoming message appears in the open chat, byte-exact")
        check(page.eval("window.__lpMarker === 42"),
              "... live, without a reload")
        check(page.eval("document.querySelectorAll('#messages img').length"
                        " === 0 && window.__pwned === undefined"),
              "markup in a message stays text")
        top = page.eval("(() => { const b = document.querySelector("
                        "'#chats .chat'); return [b.dataset.id, "
                        "b.querySelector('.preview').textContent]; })()")
        check(top == [chat, body], "the chat moved to the top with the "
              "message as its preview")

        # Type and send, as a user.
        out = "typed \"by hand\" <i>x</i> \\ ünï 😀👍🏽 ${x}"
        page.eval("document.getElementById('send-text').focus()")
        page.call("Input.insertText", {"text": out})
        check(page.eval("document.getElementById('send-text').value")
              == out, "the send box holds the typed text")
        page.click("send")
        sent = wait_until("sent at fakewa", lambda: [
            m for m in http("GET", st.fake("/_fake/sent?phone=" +
                                           PHONE)).json
            if m["body"] == out], 30)
        check(sent[0]["to"].startswith(sender),
              "the typed message arrived at fakewa byte-exact, to %s"
              % sender)
        page.wait("document.getElementById('send-text').value === ''",
                  "send box cleared")
        time.sleep(1.0)  # its WebSocket echo has come by now
        mine = [b for me, b in message_bodies(page) if me and b == out]
        check(len(mine) == 1, "the sent message shows once, as mine (%d)"
              % len(mine))

        # A notifier restart: the page reconnects (with ?since=) and goes on.
        check(st.stop("notifier-svc") == 0, "notifier-svc stops (SIGTERM)")
        page.wait("document.getElementById('ws-state').dataset.ws === "
                  "'retrying'", "the page notices the drop")
        ok("the page notices the drop and retries")
        st.start("notifier-svc")
        page.wait("document.getElementById('ws-state').textContent === "
                  "'live'", "WebSocket live again", 60)
        ok("the page reconnects to the restarted notifier")
        # session-svc's event publisher redials the notifier on its own
        # schedule: an event published before that is lost, so try again.
        seen = None
        for i in range(20):
            b = "after the restart #%d" % i
            http("POST", st.fake("/_fake/incoming"),
                 body={"phone": PHONE, "from": sender, "body": b})
            if page.call_fn("""async b => { for (let i = 0; i < 15; i++) {
                  if ([...document.querySelectorAll('#messages .body')]
                        .some(e => e.textContent === b)) return true;
                  await new Promise(r => setTimeout(r, 100)); }
                  return false; }""", b):
                seen = b
                break
        check(seen is not None and page.eval("window.__lpMarker === 42"),
              "messages keep arriving live after the reconnect (%s)" % seen)
        page.eval("document.getElementById('messages').scrollTop = 1e9")

        shot = page.call("Page.captureScreenshot", {"format": "png"})
        path = os.path.join(outdir, "livepage.png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        ok("screenshot written: " + path)

        page.click("disconnect")
        page.wait("document.getElementById('status').textContent === "
                  "'disconnected' && document.querySelectorAll("
                  "'#chats li').length === 0 && !document.getElementById("
                  "'connect').disabled", "disconnected", 30)
        ok("Disconnect: status disconnected, chats cleared, Connect again")

        # A bad token, pasted by hand: refused, said so.
        page.call_fn("""t => { document.getElementById('token').value = t;
            document.getElementById('settings').requestSubmit(); }""",
                     stack.token("page-user-1", secret="x" * 40))
        page.wait("document.getElementById('status').textContent === "
                  "'token refused'", "token refused")
        check(page.eval("!document.getElementById('notice').hidden"),
              "a bad token is refused and the page says so")
        page.click("token-forget")
        check(page.eval("sessionStorage.getItem('wa-server.token') === null"),
              "Forget removes the token from sessionStorage")
        errs = page.errors()
        check(errs == [], "no script error, no CSP violation (%s)" % errs)
    finally:
        if page is not None:
            page.close()
        st.stop_all()


def main():
    bindir = sys.argv[1]
    outdir = sys.argv[2] if len(sys.argv) > 2 else os.getcwd()
    work = tempfile.mkdtemp(prefix="test_livepage.")
    global FAILED
    try:
        run(bindir, outdir, work)
    except Exception as e:  # a timeout or a failed check
        if not isinstance(e, AssertionError) or \
                not str(e).startswith("not ok"):
            FAILED += 1
            print("not ok - %s" % e, flush=True)
        for name in ("gateway.log", "notifier-svc.log", "session-svc.log",
                     "page-chromium.log"):
            p = os.path.join(work, name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    tail = f.readlines()[-15:]
                print("# --- last lines of %s ---\n# %s" % (
                    name, "# ".join(tail)), flush=True)
    finally:
        if FAILED == 0 and not os.environ.get("KEEP_WORK"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("# work directory kept: " + work)
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
