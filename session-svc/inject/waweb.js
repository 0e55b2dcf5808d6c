/*
 * waweb.js - the only code in wa-server that knows WhatsApp Web's page
 * (shared/WAWEB.md). session-svc injects it with
 * Page.addScriptToEvaluateOnNewDocument, so it runs before the page's own
 * scripts, in every document of the tab.
 *
 * To session-svc it reports through one DevTools binding, window.__waBridge,
 * with one JSON object per call: {"t": kind, ...}:
 *   hello {version}          the script started (top frame)
 *   loading {state}          Socket.state while the app starts
 *   qr {qr}                  a login QR string to show
 *   authenticated            the phone linked / the profile holds a login
 *   ready {phone, name}      account info is known; calls are served
 *   message {msg}            a new incoming or outgoing message
 *   logout                   the phone unlinked this device
 *   error {message}          the page is unusable (e.g. a missing module)
 *
 * session-svc calls window.__waCall(fn, args) with Runtime.callFunctionOn,
 * its arguments passed as DevTools values (never pasted into source). Every
 * call resolves to {ok: true, data} or {ok: false, code, message}.
 * Functions: chats {}, messages {chatId, limit}, send {chatId, message},
 * chatByPhone {phone}, logout {}.
 */
(function () {
    'use strict';

    if (window.top !== window || window.__waCall !== undefined)
        return;
    const bridge = window.__waBridge;
    if (typeof bridge !== 'function')
        return;
    /* Our own reference: page code replacing window.__waBridge later does
     * not reroute our reports. */
    const emit = (obj) => {
        try {
            bridge(JSON.stringify(obj));
        } catch (e) {
            /* the binding is gone: the tab is closing */
        }
    };

    const POLL_MS = 200;
    const GIVE_UP_MS = 30000;
    const QR_POLL_MS = 250;
    const BODY_MAX = 65536; /* UTF-16 units, WhatsApp's own text limit */
    const MODULES = {
        collections: 'WAWebCollections',
        socket: 'WAWebSocketModel',
        conn: 'WAWebConnModel',
        cmd: 'WAWebCmd',
        me: 'WAWebUserPrefsMeUser',
        send: 'WAWebSendMsgChatAction',
        findChat: 'WAWebFindChatAction',
        wid: 'WAWebWidFactory',
        exists: 'WAWebQueryExistsJob',
        load: 'WAWebChatLoadMessages',
    };
    /* Used when present (the real site builds message keys with it). */
    const OPTIONAL = {msgKey: 'WAWebMsgKey'};
    const PENDING_STATES = ['OPENING', 'UNLAUNCHED', 'PAIRING', 'CONNECTING'];
    const QR_STATES = ['UNPAIRED', 'UNPAIRED_IDLE'];

    const M = {};
    let phase = 'loading'; /* loading, qr, authenticated, ready, failed */
    let lastQR = null;
    let qrTimer = null;
    let qrObserver = null;
    let meInfo = null;

    emit({t: 'hello', version: null});

    function fail(message) {
        if (phase === 'failed')
            return;
        phase = 'failed';
        stopQRWatch();
        emit({t: 'error', message: String(message).slice(0, 180)});
    }

    function req(name) {
        try {
            return typeof window.require === 'function'
                       ? window.require(name)
                       : null;
        } catch (e) {
            return null;
        }
    }

    /* Text for session-svc: no NUL (C strings end there), bounded. */
    function text(s, max) {
        s = typeof s === 'string' ? s : (s === null || s === undefined ? '' : String(s));
        s = s.replace(/\u0000/g, '');
        return s.length > max ? s.slice(0, max) : s;
    }

    function wid(w) {
        if (w === null || w === undefined)
            return '';
        if (typeof w === 'string')
            return w;
        if (typeof w._serialized === 'string')
            return w._serialized;
        return String(w);
    }

    function msgOut(m) {
        const id = m.id || {};
        const chatId = wid(id.remote) || (id.fromMe ? wid(m.to) : wid(m.from));
        const body = text(m.type === 'chat' ? m.body : m.caption, BODY_MAX);
        return {
            id: typeof id._serialized === 'string' ? id._serialized : wid(id),
            chatId: chatId,
            from: wid(m.from),
            to: wid(m.to),
            body: body,
            timestamp: Math.max(0, Math.floor(Number(m.t) || 0)),
            fromMe: !!id.fromMe,
            type: typeof m.type === 'string' ? m.type : 'unknown',
        };
    }

    function models(coll) {
        if (!coll)
            return [];
        if (typeof coll.getModelsArray === 'function')
            return coll.getModelsArray();
        return Array.isArray(coll.models) ? coll.models : [];
    }

    function chatOut(c) {
        const id = wid(c.id);
        const msgs = models(c.msgs);
        const last = msgs.length ? msgs[msgs.length - 1] : null;
        const contact = c.contact || {};
        let name = c.name || c.formattedTitle || contact.name ||
                   contact.pushname || '';
        return {
            id: id,
            name: text(name, 200),
            isGroup: !!c.isGroup || id.endsWith('@g.us'),
            unreadCount: Math.max(0, Math.floor(Number(c.unreadCount) || 0)),
            timestamp: Math.max(0, Math.floor(Number(c.t) || 0)),
            lastMessage: last ? msgOut(last) : null,
        };
    }

    /* ---- login ---- */

    function qrNow() {
        /* The full string is shown in div[data-ref]; its first field is
         * Conn.ref. Take the element's value once it matches the ref. */
        const el = document.querySelector('div[data-ref]');
        const full = el ? el.getAttribute('data-ref') : null;
        const ref = M.conn.Conn.ref;
        if (!full || full.indexOf(',') < 0)
            return null;
        if (typeof ref === 'string' && ref !== '' && full !== ref &&
            full.indexOf(ref + ',') !== 0)
            return null; /* the element still shows the previous code */
        return full;
    }

    function checkQR() {
        if (phase !== 'qr')
            return;
        const qr = qrNow();
        if (qr !== null && qr !== lastQR) {
            lastQR = qr;
            emit({t: 'qr', qr: qr});
        }
    }

    /*
     * While a QR shows: the element's data-ref is watched, so a new code
     * is reported as soon as the page renders it; the interval is the
     * fallback for a page whose rendering the observer does not see.
     */
    function startQRWatch() {
        if (qrTimer === null)
            qrTimer = setInterval(checkQR, QR_POLL_MS);
        if (qrObserver !== null || typeof MutationObserver !== 'function' ||
            !document.documentElement)
            return;
        qrObserver = new MutationObserver(checkQR);
        qrObserver.observe(document.documentElement, {
            subtree: true,
            childList: true,
            attributes: true,
            attributeFilter: ['data-ref'],
        });
    }

    function stopQRWatch() {
        if (qrTimer !== null) {
            clearInterval(qrTimer);
            qrTimer = null;
        }
        if (qrObserver !== null) {
            qrObserver.disconnect();
            qrObserver = null;
        }
    }

    function account() {
        let me = null, info = {};
        try {
            me = M.me.getMaybeMePnUser();
        } catch (e) {
            me = null;
        }
        try {
            info = M.conn.Conn.serialize() || {};
        } catch (e) {
            info = {};
        }
        const serialized = wid(me || info.wid);
        const phone = (me && typeof me.user === 'string')
                          ? me.user
                          : serialized.split('@')[0];
        if (!/^[0-9]{5,20}$/.test(phone))
            return null;
        const name = info.pushname || M.conn.Conn.pushname || '';
        return {phone: phone, name: text(name, 200),
                wid: serialized};
    }

    function onMessage(m) {
        if (!m || !m.isNewMsg)
            return;
        if (m.type === 'ciphertext') {
            /* Not decrypted yet: report it once it is. */
            const once = () => {
                if (m.type === 'ciphertext')
                    return;
                if (typeof m.off === 'function')
                    m.off('change:type', once);
                emit({t: 'message', msg: msgOut(m)});
            };
            m.on('change:type', once);
            return;
        }
        emit({t: 'message', msg: msgOut(m)});
    }

    function becomeReady(tries) {
        if (phase !== 'authenticated')
            return;
        const a = account();
        if (a === null) {
            if (tries > 100)
                return fail('account information never became available');
            setTimeout(() => becomeReady(tries + 1), POLL_MS);
            return;
        }
        meInfo = a;
        phase = 'ready';
        M.collections.Msg.on('add', onMessage);
        emit({t: 'ready', phone: a.phone, name: a.name});
    }

    function onSynced() {
        if (phase === 'authenticated' || phase === 'ready' ||
            phase === 'failed')
            return;
        phase = 'authenticated';
        stopQRWatch();
        emit({t: 'authenticated'});
        becomeReady(0);
    }

    function onState() {
        const st = M.socket.Socket.state;
        if (phase === 'failed' || phase === 'ready' ||
            phase === 'authenticated')
            return;
        if (QR_STATES.indexOf(st) >= 0) {
            phase = 'qr';
            if (st === 'UNPAIRED_IDLE')
                M.cmd.Cmd.refreshQR();
            startQRWatch();
            checkQR();
        } else if (PENDING_STATES.indexOf(st) >= 0) {
            emit({t: 'loading', state: String(st)});
        } else if (M.socket.Socket.hasSynced) {
            onSynced();
        }
    }

    function onLogout() {
        if (phase === 'failed')
            return;
        phase = 'failed';
        emit({t: 'logout'});
    }

    function startApp() {
        const missing = [];
        for (const k of Object.keys(MODULES)) {
            M[k] = req(MODULES[k]);
            if (!M[k])
                missing.push(MODULES[k]);
        }
        for (const k of Object.keys(OPTIONAL))
            M[k] = req(OPTIONAL[k]);
        if (missing.length)
            return fail('missing module ' + missing.join(', '));
        if (!M.socket.Socket || !M.conn.Conn || !M.cmd.Cmd ||
            !M.collections.Msg || !M.collections.Chat)
            return fail('missing module member (Socket, Conn, Cmd, Msg or ' +
                        'Chat)');
        emit({t: 'hello', version: String(window.Debug.VERSION).slice(0, 60)});
        M.cmd.Cmd.on('logout', onLogout);
        M.cmd.Cmd.on('logout_from_bridge', onLogout);
        M.socket.Socket.on('change:state', onState);
        M.socket.Socket.on('change:hasSynced', () => {
            if (M.socket.Socket.hasSynced)
                onSynced();
        });
        M.conn.Conn.on('change:ref', checkQR);
        onState();
    }

    /* The app starts once window.Debug.VERSION exists (WAWEB.md). */
    let booted = false;
    function tryBoot() {
        let version = null;
        if (booted)
            return true;
        try {
            version = window.Debug && window.Debug.VERSION;
        } catch (e) {
            version = null;
        }
        if (!version)
            return false;
        booted = true;
        try {
            startApp();
        } catch (e) {
            fail('adapter failed to start: ' + (e && e.message));
        }
        return true;
    }

    /*
     * The bundle announces itself by assigning window.Debug. A setter,
     * installed before any page script runs, catches that assignment and
     * boots at once (after the assigning script's turn, so VERSION is
     * filled in); it then turns itself into the plain data property the
     * page expects. The poll below stays as the fallback (a page that
     * defines Debug some other way, or fills VERSION in later) and as the
     * timeout.
     */
    function watchDebug() {
        if (Object.getOwnPropertyDescriptor(window, 'Debug') !== undefined)
            return;
        try {
            Object.defineProperty(window, 'Debug', {
                configurable: true,
                enumerable: false,
                get() {
                    return undefined;
                },
                set(v) {
                    Object.defineProperty(window, 'Debug', {
                        value: v,
                        writable: true,
                        configurable: true,
                        enumerable: true,
                    });
                    setTimeout(tryBoot, 0);
                },
            });
        } catch (e) {
            /* not configurable here: the poll does the job */
        }
    }

    const started = Date.now();
    watchDebug();
    (function waitForApp() {
        if (tryBoot())
            return;
        if (Date.now() - started > GIVE_UP_MS)
            return fail('WhatsApp Web did not load (no Debug.VERSION after ' +
                        GIVE_UP_MS / 1000 + ' s)');
        setTimeout(waitForApp, POLL_MS);
    })();

    /* ---- calls from session-svc ---- */

    function err(code, message) {
        return {ok: false, code: code, message: message};
    }

    async function findChat(id) {
        const w = M.wid.createWid(id);
        let chat = M.collections.Chat.get(w) || M.collections.Chat.get(id);
        if (!chat) {
            const r = await M.findChat.findOrCreateLatestChat(w);
            chat = r && (r.chat || r);
        }
        return chat || null;
    }

    function newMsgId(chat) {
        let hex = '';
        if (M.msgKey && typeof M.msgKey.newId === 'function') {
            hex = M.msgKey.newId();
        } else {
            const b = new Uint8Array(10);
            crypto.getRandomValues(b);
            hex = Array.from(b, (x) => x.toString(16).padStart(2, '0'))
                      .join('')
                      .toUpperCase();
        }
        const fields = {fromMe: true, remote: chat.id, id: hex};
        if (M.msgKey && typeof M.msgKey === 'function')
            return new M.msgKey(fields);
        return Object.assign(fields, {
            _serialized: 'true_' + wid(chat.id) + '_' + hex,
            toString() {
                return this._serialized;
            },
        });
    }

    const api = {
        chats: async () => ({ok: true, data: models(M.collections.Chat)
                                                 .map(chatOut)}),

        messages: async (a) => {
            const chat = M.collections.Chat.get(a.chatId);
            if (!chat)
                return err('not_found', 'no such chat');
            let msgs = models(chat.msgs);
            for (let i = 0; msgs.length < a.limit && i < 50; i++) {
                const state = chat.msgs.msgLoadState;
                if (state && state.noEarlierMsgs)
                    break;
                const more = await M.load.loadEarlierMsgs(chat, chat.msgs);
                if (!more || !more.length)
                    break;
                msgs = models(chat.msgs);
            }
            return {ok: true, data: msgs.slice(-a.limit).map(msgOut)};
        },

        send: async (a) => {
            const chat = await findChat(a.chatId);
            if (!chat)
                return err('not_found', 'no such chat');
            const t = Math.floor(Date.now() / 1000);
            const msg = {
                id: newMsgId(chat),
                body: a.message,
                type: 'chat',
                t: t,
                from: M.me.getMaybeMePnUser(),
                to: chat.id,
                self: 'out',
                local: true,
                isNewMsg: true,
                ack: 0,
            };
            const [added, sent] = M.send.addAndSendMsgToChat(chat, msg);
            const m = await added;
            await sent;
            return {ok: true, data: {id: wid((m && m.id) || msg.id),
                                     timestamp: Number(m && m.t) || t}};
        },

        /* The chat this number already has, or null (a 404): a lookup
         * never creates a chat. The number is resolved first, as WhatsApp
         * may know it under another id than the digits typed. */
        chatByPhone: async (a) => {
            const w = M.wid.createWid(a.phone + '@c.us');
            const found = await M.exists.queryWidExists(w);
            if (!found)
                return {ok: true, data: {chat: null}};
            const id = wid(found.wid || w);
            const chat = M.collections.Chat.get(M.wid.createWid(id)) ||
                M.collections.Chat.get(id);
            return {ok: true, data: {chat: chat ? chatOut(chat) : null}};
        },

        logout: async () => {
            const s = M.socket && M.socket.Socket;
            if (s && typeof s.logout === 'function')
                await s.logout();
            else if (M.cmd && M.cmd.Cmd && typeof M.cmd.Cmd.logout === 'function')
                await M.cmd.Cmd.logout();
            else
                return err('missing_module',
                           'WhatsApp Web offers no logout (Socket.logout, ' +
                           'Cmd.logout)');
            return {ok: true, data: {}};
        },
    };

    async function call(fn, args) {
        if (!Object.prototype.hasOwnProperty.call(api, fn))
            return err('bad_request', 'unknown function');
        if (fn !== 'logout' && phase !== 'ready')
            return err('not_ready', 'session is not ready');
        try {
            return await api[fn](args || {});
        } catch (e) {
            return err('browser_error',
                       String((e && e.message) || e).slice(0, 180));
        }
    }

    Object.defineProperty(window, '__waCall', {
        value: call,
        writable: false,
        configurable: false,
        enumerable: false,
    });
})();
