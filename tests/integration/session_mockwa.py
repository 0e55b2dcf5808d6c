#!/usr/bin/env python3
"""A deliberately tiny stand-in for WhatsApp Web, for session-svc's adapter
tests: the module surface of shared/WAWEB.md (window.Debug.VERSION,
window.require(...), Socket/Conn/Cmd, collections, div[data-ref]) and a
control API. It is smaller than tests/fakewa on purpose: it can misbehave
on request (hostile binding payloads, a missing module, ciphertext
messages), which the real double should not have to.

    session_mockwa.py <port> [ref-interval-ms]

Control (JSON bodies):
    POST /_mock/scan {"phone","name"}      pair the newest unpaired page
    POST /_mock/incoming {"phone","from","body","cipher"?}
    GET  /_mock/sent?phone=                [{"to","body","id"}]
    POST /_mock/logout {"phone"}           unlink every page of that phone
    POST /_mock/hostile {"phone"?, "payload"}  the next poll of a page makes
                                           it call window.__waBridge(payload)
    GET  /_mock/pages                      [{"page","state","ref","phone"}]
Page URL options: ?drop=<Module> removes a module (adapter must say so).
"""
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LOCK = threading.Lock()
PAGES = {}      # page id -> {"ref", "full", "t", "token", "hostile": []}
LOGINS = {}     # token -> {"phone", "name"}
INBOX = {}      # token -> [msg]
SENT = {}       # phone -> [{"to","body","id"}]
PENDING_HOSTILE = []
REF_MS = 2000

PAGE = r"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>WhatsApp</title></head>
<body><div id="app">Loading</div><script>
(function () {
  const drop = new URLSearchParams(location.search).get('drop');
  const pid = Math.random().toString(16).slice(2);
  function E() { const h = {}; return {
    on(e, f) { (h[e] = h[e] || []).push(f); },
    off(e, f) { h[e] = (h[e] || []).filter((x) => x !== f); },
    trigger(e, ...a) { (h[e] || []).slice().forEach((f) => f(...a)); } }; }
  function model(p) { return Object.assign(E(), p); }
  function set(m, k, v) { if (m[k] !== v) { m[k] = v; m.trigger('change:' + k, m, v); } }
  const key = (x) => (x && x._serialized) || String(x);
  function coll() { const c = E(); c.models = [];
    c.get = (id) => c.models.find((m) => key(m.id) === key(id));
    c.getModelsArray = () => c.models.slice();
    c.add = (m) => { c.models.push(m); c.trigger('add', m); return m; };
    return c; }
  const wid = (s) => ({ _serialized: s, user: s.split('@')[0], server: s.split('@')[1], toString() { return s; } });
  const Socket = model({ state: 'OPENING', hasSynced: false });
  let me = null;
  const Conn = model({ ref: null, pushname: '',
    serialize() { return { ref: this.ref, pushname: this.pushname, wid: me }; } });
  const Cmd = model({ refreshQR() { fetch('/_mock/refresh?page=' + pid, { method: 'POST' }); } });
  const Chat = coll(), Msg = coll(), Contact = coll();
  function chatFor(id) {
    let c = Chat.get(id);
    if (!c) { c = model({ id: wid(id), name: 'Contact ' + id.split('@')[0], isGroup: id.endsWith('@g.us'),
                          unreadCount: 0, t: 0, msgs: coll() }); Chat.add(c); }
    return c;
  }
  function addMsg(m) {
    const chat = chatFor(m.chat);
    const msg = model({ id: { fromMe: m.fromMe, remote: wid(m.chat), id: m.id,
                              _serialized: (m.fromMe ? 'true_' : 'false_') + m.chat + '_' + m.id },
                        body: m.body, type: m.cipher ? 'ciphertext' : 'chat', t: m.t,
                        from: wid(m.fromMe ? me._serialized : m.chat), to: wid(m.fromMe ? m.chat : me._serialized),
                        isNewMsg: true });
    chat.msgs.add(msg); chat.t = m.t; if (!m.fromMe) chat.unreadCount++;
    Msg.add(msg);
    if (m.cipher) setTimeout(() => set(msg, 'type', 'chat'), 300);
    return msg;
  }
  const mods = {
    WAWebCollections: { Chat, Msg, Contact },
    WAWebSocketModel: { Socket },
    WAWebConnModel: { Conn },
    WAWebCmd: { Cmd },
    WAWebUserPrefsMeUser: { getMaybeMePnUser: () => me },
    WAWebSendMsgChatAction: { addAndSendMsgToChat(chat, msg) {
      const m = addMsg({ chat: key(chat.id), id: msg.id.id, fromMe: true, body: msg.body, t: msg.t });
      const sent = fetch('/_mock/send', { method: 'POST', body: JSON.stringify(
        { token: localStorage.tok, to: key(chat.id), body: msg.body, id: key(m.id) }) });
      return [Promise.resolve(m), sent]; } },
    WAWebFindChatAction: { findOrCreateLatestChat: async (w) => ({ chat: chatFor(key(w)) }) },
    WAWebWidFactory: { createWid: wid },
    WAWebQueryExistsJob: { queryWidExists: async (w) => (w.user.startsWith('999') ? null : { wid: w }) },
    WAWebChatLoadMessages: { loadEarlierMsgs: async () => [] },
  };
  if (drop) delete mods[drop];
  window.require = (n) => { if (!(n in mods)) throw new Error('unknown module ' + n); return mods[n]; };
  const div = document.createElement('div');
  setTimeout(() => { window.Debug = { VERSION: '2.3000.0-mock' }; poll(); }, 150);
  async function poll() {
    let r;
    try {
      r = await (await fetch('/_mock/poll?page=' + pid + '&token=' + (localStorage.tok || ''))).json();
    } catch (e) { setTimeout(poll, 300); return; }
    for (const h of r.hostile) { try { window.__waBridge(h); } catch (e) {} }
    if (r.logout) { localStorage.removeItem('tok'); Cmd.trigger('logout'); return; }
    if (r.paired && !me) {
      localStorage.tok = r.paired.token; me = wid(r.paired.phone + '@c.us'); Conn.pushname = r.paired.name;
      set(Socket, 'state', 'CONNECTED');
      chatFor('41790000001@c.us'); chatFor('41790000002@c.us');
      setTimeout(() => set(Socket, 'hasSynced', true), 100);
    } else if (!r.paired) {
      if (!div.isConnected) { document.getElementById('app').replaceChildren(div); }
      if (div.getAttribute('data-ref') !== r.full) { div.setAttribute('data-ref', r.full); set(Conn, 'ref', r.ref); }
      set(Socket, 'state', 'UNPAIRED');
    }
    for (const m of r.msgs) addMsg(m);
    setTimeout(poll, 150);
  }
})();
</script></body></html>"""


def new_ref():
    ref = '2@' + secrets.token_urlsafe(24)
    keys = ','.join(secrets.token_urlsafe(32) for _ in range(3))
    return ref, ref + ',' + keys + ',1'


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, obj, ctype='application/json'):
        body = obj.encode() if isinstance(obj, str) else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get('Content-Length') or 0)
        return json.loads(self.rfile.read(n) or b'{}')

    def do_GET(self):
        u = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        if u.path == '/':
            return self.reply(200, PAGE, 'text/html; charset=utf-8')
        if u.path == '/_mock/poll':
            return self.poll(q.get('page', ''), q.get('token', ''))
        if u.path == '/_mock/sent':
            with LOCK:
                return self.reply(200, SENT.get(q.get('phone', ''), []))
        if u.path == '/_mock/pages':
            with LOCK:
                return self.reply(200, [
                    {'page': k, 'ref': p['full'], 'phone': LOGINS.get(p['token'], {}).get('phone')}
                    for k, p in PAGES.items()])
        self.reply(404, {'error': 'not found'})

    def poll(self, page, token):
        now = time.time()
        with LOCK:
            p = PAGES.setdefault(page, {'ref': None, 'full': None, 't': 0, 'token': '', 'seen': now,
                                        'pair': None})
            p['seen'] = now
            hostile, PENDING_HOSTILE[:] = list(PENDING_HOSTILE), []
            if p['pair'] is not None:
                token = p['pair']
            login = LOGINS.get(token)
            if token and login is None:
                return self.reply(200, {'logout': True, 'paired': None, 'msgs': [], 'hostile': hostile})
            if login:
                p['token'] = token
                msgs, INBOX[token] = INBOX.get(token, []), []
                return self.reply(200, {'paired': dict(login, token=token), 'msgs': msgs,
                                        'hostile': hostile, 'logout': False})
            if p['ref'] is None or now - p['t'] > REF_MS / 1000:
                p['ref'], p['full'] = new_ref()
                p['t'] = now
            return self.reply(200, {'paired': None, 'ref': p['ref'], 'full': p['full'], 'msgs': [],
                                    'hostile': hostile, 'logout': False})

    def do_POST(self):
        u = urlparse(self.path)
        b = self.body()
        with LOCK:
            if u.path == '/_mock/scan':
                live = [p for p in PAGES.values() if not p['token'] and p['pair'] is None and
                        time.time() - p['seen'] < 2 and (not b.get('ref') or p['full'] == b['ref'])]
                if not live:
                    return self.reply(404, {'error': 'no page shows a QR'})
                tok = secrets.token_hex(16)
                LOGINS[tok] = {'phone': b['phone'], 'name': b.get('name', '')}
                live[-1]['pair'] = tok
                return self.reply(200, {'ok': True})
            if u.path == '/_mock/incoming':
                n = 0
                for tok, lg in LOGINS.items():
                    if lg['phone'] == b['phone']:
                        INBOX.setdefault(tok, []).append({
                            'chat': b['from'] + '@c.us', 'id': secrets.token_hex(8).upper(), 'fromMe': False,
                            'body': b['body'], 't': int(time.time()), 'cipher': bool(b.get('cipher'))})
                        n += 1
                return self.reply(200 if n else 404, {'delivered': n})
            if u.path == '/_mock/send':
                lg = LOGINS.get(b.get('token') or '', {})
                SENT.setdefault(lg.get('phone', '?'), []).append(
                    {'to': b['to'], 'body': b['body'], 'id': b['id']})
                return self.reply(200, {})
            if u.path == '/_mock/logout':
                for tok in [t for t, lg in LOGINS.items() if lg['phone'] == b['phone']]:
                    del LOGINS[tok]
                return self.reply(200, {})
            if u.path == '/_mock/hostile':
                PENDING_HOSTILE.append(b['payload'])
                return self.reply(200, {})
            if u.path == '/_mock/refresh':
                return self.reply(200, {})
        self.reply(404, {'error': 'not found'})


def main():
    global REF_MS
    port = int(sys.argv[1])
    if len(sys.argv) > 2:
        REF_MS = int(sys.argv[2])
    srv = ThreadingHTTPServer(('127.0.0.1', port), H)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == '__main__':
    main()
