/*
 * wa-server live page: token, status, QR code, chats, messages, send.
 *
 * REST goes to this origin (the gateway) with Authorization: Bearer; live
 * events come from the notifier's WebSocket (default ws://<this host>:3002/,
 * ?ws=<url> or the field overrides it), reconnecting with ?since=<last seq>
 * after a drop. The token lives in sessionStorage only; a ?token= in the
 * address is taken and removed from it at once. Every piece of data is
 * rendered with textContent: no markup is ever built from data.
 */
(() => {
  'use strict';

  const KEY_TOKEN = 'wa-server.token';
  const KEY_WS = 'wa-server.ws';
  const NOTIFIER_PORT = 3002;
  const MESSAGES_LIMIT = 50;
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 30000;
  const LINKED = ['authenticated', 'ready'];
  const BUSY = ['initializing', 'qr', 'authenticated', 'ready'];

  const $ = (id) => document.getElementById(id);

  const st = {
    token: '',
    gen: 0,            /* bumped when the token changes: stale answers drop */
    ws: null,
    retries: 0,
    retryTimer: 0,
    lastSeq: null,     /* the last frame's seq: ?since= on reconnect */
    refused: false,    /* the token was refused (401): stop reconnecting */
    session: null,     /* {status, phoneNumber, displayName, qrCode} */
    statusEpoch: 0,    /* bumped by each status frame */
    chats: [],         /* as GET /chats, newest first */
    chatsTimer: 0,
    chatsTries: 0,     /* GET /chats answered not_ready while ready */
    wsFails: 0,        /* attempts in a row that never opened */
    selected: null,    /* chat id */
    msgGen: 0,
    msgs: [],          /* the selected chat's messages, oldest first */
  };

  /* ---- small helpers ---- */

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls)
      e.className = cls;
    if (text !== undefined && text !== null)
      e.textContent = String(text);
    return e;
  }

  function notice(text, bad) {
    const n = $('notice');
    n.textContent = text || '';
    n.hidden = !text;
    n.classList.toggle('bad', !!bad);
  }

  function fmtTime(sec) {
    if (typeof sec !== 'number' || !(sec > 0))
      return '';
    const d = new Date(sec * 1000);
    const now = new Date();
    if (d.toDateString() === now.toDateString())
      return d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});
    return d.toLocaleDateString([], {day: 'numeric', month: 'short'}) + ' ' +
           d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});
  }

  function defaultWs() {
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') +
           location.hostname + ':' + NOTIFIER_PORT + '/';
  }

  function wsBase() {
    return $('ws-url').value.trim() || defaultWs();
  }

  /* ---- REST ---- */

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const gen = st.gen;
    const init = {method: method, cache: 'no-store',
                  headers: {Authorization: 'Bearer ' + st.token}};
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'network', 'the gateway did not answer');
    }
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    if (gen !== st.gen)
      throw new ApiError(0, 'stale', 'the token changed');
    if (res.status === 401) {
      st.refused = true;
      closeWs();
      setWsState('off');
      showStatus(null, 'token refused');
      notice('The gateway refused the token' +
             (data && data.error ? ': ' + data.error : '') +
             '. Paste a valid one.', true);
    }
    if (!res.ok)
      throw new ApiError(res.status, data && data.code,
                         (data && data.error) || ('HTTP ' + res.status));
    return data;
  }

  function failed(what, e) {
    if (e && (e.code === 'stale' || e.status === 401))
      return;
    notice(what + ': ' + (e && e.message ? e.message : String(e)), true);
  }

  /* ---- session status ---- */

  async function refreshStatus() {
    const epoch = st.statusEpoch;
    try {
      const s = await api('GET', '/status');
      if (epoch === st.statusEpoch) /* else a frame brought newer news */
        showStatus(s);
    } catch (e) {
      failed('GET /status', e);
    }
  }

  function showStatus(s, label) {
    const prev = st.session ? st.session.status : null;
    st.session = s;
    const status = s ? s.status : null;
    const badge = $('status');
    badge.textContent = status || label || 'no token';
    badge.dataset.status = status || '';

    const acct = s && status === 'ready'
      ? [s.displayName, s.phoneNumber ? '+' + s.phoneNumber : '']
          .filter(Boolean).join(' · ')
      : '';
    $('account').textContent = acct;

    const qr = s && status === 'qr' && typeof s.qrCode === 'string' &&
               s.qrCode.startsWith('data:image/png;base64,')
      ? s.qrCode : null;
    const img = $('qr');
    if (qr) {
      if (img.getAttribute('src') !== qr)
        img.src = qr;
    } else {
      img.removeAttribute('src');
    }
    $('qr-box').hidden = !qr;

    $('connect').disabled = !st.token || !s || BUSY.includes(status);
    $('disconnect').disabled = !st.token || !s || status === 'disconnected';
    $('hint').textContent = {
      disconnected: 'Not linked. Connect to get a QR code.',
      initializing: 'Starting WhatsApp Web…',
      qr: 'Scan the QR code with the phone.',
      authenticated: 'Linked; loading chats…',
      ready: 'Linked and ready.',
      error: 'WhatsApp Web failed; it is restarted, or Connect again.',
    }[status] || '';

    const ready = status === 'ready';
    $('send-text').disabled = !ready || !st.selected;
    $('send').disabled = !ready || !st.selected;
    if (ready && prev !== 'ready') {
      st.chatsTries = 0;
      loadChats();
    }
    if (!LINKED.includes(status) && prev && LINKED.includes(prev))
      clearChats();
  }

  /* A status-like frame (status, qr, ready, disconnected, error). */
  function onStatusFrame(type, d) {
    st.statusEpoch++;
    const s = Object.assign({}, st.session || {});
    s.status = typeof d.status === 'string' ? d.status : type;
    if (s.status !== 'qr')
      s.qrCode = null;
    if (type === 'qr')
      s.qrCode = d.qrDataUrl;
    if (type === 'ready') {
      s.phoneNumber = d.phoneNumber;
      s.displayName = d.displayName;
    }
    if (type === 'disconnected')
      notice('Disconnected' + (d.reason ? ' (' + d.reason + ')' : '') + '.');
    else if (type === 'error')
      notice('Session error: ' + (d.message || 'unknown'), true);
    else if (type === 'ready' || type === 'qr')
      notice('');
    showStatus(s);
  }

  /* ---- chats ---- */

  function clearChats() {
    st.chats = [];
    renderChats();
    selectChat(null);
  }

  async function loadChats() {
    clearTimeout(st.chatsTimer);
    st.chatsTimer = 0;
    try {
      const r = await api('GET', '/chats');
      st.chatsTries = 0;
      st.chats = Array.isArray(r && r.chats) ? r.chats : [];
      renderChats();
    } catch (e) {
      /* Just linked, the browser may still be settling: try again. */
      if (e.code === 'not_ready' && st.session &&
          st.session.status === 'ready' && st.chatsTries++ < 5)
        st.chatsTimer = setTimeout(loadChats, 1000);
      else if (e.code !== 'not_ready')
        failed('GET /chats', e);
    }
  }

  function loadChatsSoon() {
    if (!st.chatsTimer)
      st.chatsTimer = setTimeout(loadChats, 300);
  }

  function chatTitle(c) {
    return (c && (c.name || (c.id || '').replace(/@.*$/, ''))) || '';
  }

  function renderChats() {
    const ul = $('chats');
    ul.replaceChildren();
    for (const c of st.chats) {
      const li = el('li');
      const b = el('button', 'chat');
      b.type = 'button';
      b.dataset.id = c.id;
      if (c.id === st.selected)
        b.setAttribute('aria-current', 'true');
      b.append(el('span', 'name', chatTitle(c) + (c.isGroup ? ' (group)' : '')));
      const last = c.lastMessage;
      b.append(el('span', 'time', fmtTime(last ? last.timestamp : c.timestamp)));
      b.append(el('span', 'preview',
                  last ? (last.fromMe ? 'You: ' : '') + (last.body || '[' +
                  (last.type || 'message') + ']') : ''));
      if (c.unreadCount > 0)
        b.append(el('span', 'unread', c.unreadCount));
      b.addEventListener('click', () => selectChat(c.id));
      li.append(b);
      ul.append(li);
    }
    $('chats-empty').hidden = st.chats.length > 0;
  }

  /* ---- messages ---- */

  async function selectChat(id) {
    st.selected = id;
    st.msgs = [];
    const gen = ++st.msgGen;
    const chat = st.chats.find((c) => c.id === id);
    if (chat)
      chat.unreadCount = 0;
    $('chat-title').textContent = id ? chatTitle(chat) || id : 'Messages';
    renderChats();
    renderMessages();
    const ready = st.session && st.session.status === 'ready';
    $('send-text').disabled = !ready || !id;
    $('send').disabled = !ready || !id;
    if (!id)
      return;
    try {
      const r = await api('GET', '/messages/' + encodeURIComponent(id) +
                          '?limit=' + MESSAGES_LIMIT);
      if (gen !== st.msgGen)
        return;
      /* Live messages that came in meanwhile are kept: merge by id. */
      mergeMessages(Array.isArray(r && r.messages) ? r.messages : []);
    } catch (e) {
      failed('GET /messages', e);
    }
  }

  function mergeMessages(list) {
    const seen = new Set(st.msgs.map((m) => m.id));
    for (const m of list) {
      if (m && !seen.has(m.id)) {
        seen.add(m.id);
        st.msgs.push(m);
      }
    }
    st.msgs.sort((a, b) => (a.timestamp || 0) - (b.timestamp || 0));
    renderMessages();
  }

  function messageItem(m) {
    const li = el('li', m.fromMe ? 'msg me' : 'msg');
    li.dataset.id = m.id;
    li.append(el('span', 'body',
                 m.type === 'chat' || m.body ? m.body : '[' + m.type + ']'));
    li.append(el('span', 'meta', fmtTime(m.timestamp)));
    return li;
  }

  function renderMessages() {
    const ol = $('messages');
    ol.replaceChildren(...st.msgs.map(messageItem));
    ol.scrollTop = ol.scrollHeight;
  }

  function addLiveMessage(m) {
    if (st.msgs.some((x) => x.id === m.id))
      return;
    const ol = $('messages');
    const atEnd = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40;
    st.msgs.push(m);
    ol.append(messageItem(m));
    if (atEnd || m.fromMe)
      ol.scrollTop = ol.scrollHeight;
  }

  /* A message frame, or our own send's answer. */
  function onMessage(m) {
    if (!m || typeof m.chatId !== 'string' || typeof m.id !== 'string')
      return;
    const i = st.chats.findIndex((c) => c.id === m.chatId);
    if (i < 0) {
      loadChatsSoon(); /* a new chat: its name comes with the list */
    } else {
      const c = st.chats[i];
      const dup = c.lastMessage && c.lastMessage.id === m.id;
      c.lastMessage = m;
      c.timestamp = Math.max(c.timestamp || 0, m.timestamp || 0);
      if (!m.fromMe && m.chatId !== st.selected && !dup)
        c.unreadCount = (c.unreadCount || 0) + 1;
      st.chats.splice(i, 1);
      st.chats.unshift(c);
      renderChats();
    }
    if (m.chatId === st.selected)
      addLiveMessage(m);
  }

  async function send(ev) {
    ev.preventDefault();
    const box = $('send-text');
    const text = box.value;
    const chatId = st.selected;
    if (!chatId || text.length === 0 || $('send').disabled)
      return;
    $('send').disabled = true;
    try {
      const r = await api('POST', '/send', {chatId: chatId, message: text});
      if (box.value === text)
        box.value = '';
      onMessage({id: r.id, chatId: chatId, from: '', to: chatId, body: text,
                 timestamp: r.timestamp, fromMe: true, type: 'chat'});
    } catch (e) {
      failed('POST /send', e);
    } finally {
      const ready = st.session && st.session.status === 'ready';
      $('send').disabled = !ready || !st.selected;
    }
  }

  /* ---- WebSocket ---- */

  function setWsState(s, text) {
    const b = $('ws-state');
    b.dataset.ws = s;
    b.textContent = text || s;
  }

  function closeWs() {
    clearTimeout(st.retryTimer);
    st.retryTimer = 0;
    if (st.ws) {
      const ws = st.ws;
      st.ws = null;
      ws.close(1000);
    }
  }

  function openWs() {
    closeWs();
    if (!st.token || st.refused)
      return;
    let url;
    try {
      url = new URL(wsBase());
    } catch (e) {
      url = null;
    }
    if (!url || (url.protocol !== 'ws:' && url.protocol !== 'wss:')) {
      setWsState('off');
      notice('The WebSocket URL must start with ws:// or wss://.', true);
      return;
    }
    url.searchParams.set('token', st.token);
    if (st.lastSeq !== null)
      url.searchParams.set('since', String(st.lastSeq));
    const ws = new WebSocket(url.href);
    let opened = false;
    st.ws = ws;
    setWsState('connecting');
    ws.onopen = () => {
      if (st.ws !== ws)
        return;
      opened = true;
      st.retries = 0;
      if (st.wsFails >= 2)
        notice('');
      st.wsFails = 0;
      setWsState('live');
      /* Without a seq to resume from, what we show may be older than the
       * stream: read the state once it runs. */
      if (st.lastSeq === null)
        refreshStatus();
    };
    ws.onmessage = (e) => {
      if (st.ws !== ws)
        return;
      let f;
      try {
        f = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      if (f && typeof f === 'object')
        onFrame(f);
    };
    ws.onclose = () => {
      if (st.ws !== ws)
        return;
      st.ws = null;
      /* A refused upgrade (bad token, origin not in the notifier's
       * ALLOWED_ORIGINS) looks like any failure from here. */
      if (!opened && ++st.wsFails === 2)
        notice('Cannot open the live stream at ' + wsBase() + ': is the ' +
               'notifier running there, and this page\'s origin (' +
               location.origin + ') in its ALLOWED_ORIGINS?', true);
      retryWs();
    };
  }

  function retryWs() {
    const ms = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** st.retries) *
               (0.75 + Math.random() / 2);
    st.retries = Math.min(st.retries + 1, 10);
    setWsState('retrying', 'retrying in ' + Math.round(ms / 1000) + ' s');
    st.retryTimer = setTimeout(() => {
      st.retryTimer = 0;
      openWs();
      /* Were we refused (bad token)? A WebSocket cannot say: ask REST. */
      if (st.retries >= 2)
        refreshStatus();
    }, ms);
  }

  function onFrame(f) {
    if (typeof f.seq === 'number' && (st.lastSeq === null || f.seq > st.lastSeq))
      st.lastSeq = f.seq;
    const d = f.data && typeof f.data === 'object' ? f.data : {};
    switch (f.type) {
    case 'resync': /* events were lost: read everything again */
      refreshStatus();
      if (st.session && st.session.status === 'ready') {
        loadChats();
        if (st.selected)
          selectChat(st.selected);
      }
      break;
    case 'status':
    case 'qr':
    case 'ready':
    case 'disconnected':
    case 'error':
      onStatusFrame(f.type, d);
      break;
    case 'message':
      onMessage(d);
      break;
    default:
      break;
    }
  }

  /* ---- token and start ---- */

  function useToken(token) {
    st.gen++;
    closeWs();
    st.token = token;
    st.refused = false;
    st.lastSeq = null;
    st.retries = 0;
    st.wsFails = 0;
    st.chatsTries = 0;
    st.chats = [];
    st.selected = null;
    st.msgs = [];
    renderChats();
    selectChat(null);
    showStatus(null);
    notice('');
    if (!token) {
      setWsState('off');
      return;
    }
    refreshStatus();
    openWs();
  }

  function takeUrlParams() {
    const url = new URL(location.href);
    const token = url.searchParams.get('token');
    const ws = url.searchParams.get('ws');
    if (token !== null) {
      if (token)
        sessionStorage.setItem(KEY_TOKEN, token);
      url.searchParams.delete('token');
      history.replaceState(history.state, '',
                           url.pathname + url.search + url.hash);
    }
    if (ws)
      sessionStorage.setItem(KEY_WS, ws);
  }

  function start() {
    takeUrlParams();
    const token = sessionStorage.getItem(KEY_TOKEN) || '';
    $('token').value = token;
    $('ws-url').value = sessionStorage.getItem(KEY_WS) || defaultWs();

    $('settings').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = $('token').value.trim();
      const w = $('ws-url').value.trim();
      if (t)
        sessionStorage.setItem(KEY_TOKEN, t);
      else
        sessionStorage.removeItem(KEY_TOKEN);
      if (w && w !== defaultWs())
        sessionStorage.setItem(KEY_WS, w);
      else
        sessionStorage.removeItem(KEY_WS);
      useToken(t);
    });
    $('token-forget').addEventListener('click', () => {
      sessionStorage.removeItem(KEY_TOKEN);
      $('token').value = '';
      useToken('');
    });
    $('connect').addEventListener('click', async () => {
      $('connect').disabled = true;
      try {
        const r = await api('POST', '/connect');
        if (r && r.status && st.session && !BUSY.includes(st.session.status))
          onStatusFrame('status', r);
      } catch (e) {
        failed('POST /connect', e);
        $('connect').disabled = false;
      }
    });
    $('disconnect').addEventListener('click', async () => {
      $('disconnect').disabled = true;
      try {
        await api('POST', '/disconnect');
        refreshStatus();
      } catch (e) {
        failed('POST /disconnect', e);
        $('disconnect').disabled = false;
      }
    });
    $('send-form').addEventListener('submit', send);
    $('send-text').addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        $('send-form').requestSubmit();
      }
    });
    useToken(token);
  }

  start();
})();
