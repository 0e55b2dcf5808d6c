/*
 * fakewa - the page. A stand-in for web.whatsapp.com that offers the same
 * surface a client adapter uses on the real site (WAWEB.md):
 *
 *   - it boots asynchronously: after a short "bundle load" window.require()
 *     appears, then window.Debug.VERSION;
 *   - window.require(name) returns the module objects of WAWEB.md and throws
 *     for any other name, like the real module system;
 *   - Backbone-like models and collections: attributes as properties,
 *     on/off/once, change:<attr> events that bubble to collections,
 *     serialize();
 *   - Socket.state goes UNLAUNCHED -> OPENING -> UNPAIRED (QR shown in
 *     div[data-ref], Conn.ref rotating) -> UNPAIRED_IDLE, or -> PAIRING ->
 *     hasSynced -> CONNECTED with account info;
 *   - the login is kept in both Local Storage and IndexedDB; either one
 *     means logged in on the next load; logout clears both, fires Cmd
 *     'logout' and navigates to /?post_logout=1;
 *   - incoming messages arrive as type 'ciphertext' and become 'chat' a
 *     moment later (change:type).
 *
 * Everything talks to fakewa over one WebSocket (/ws/chat) carrying JSON
 * (protocol in tests/fakewa/fakewa.h). Text is only ever set with
 * textContent; nothing is spliced into HTML or script.
 */
(function () {
    'use strict';

    const VERSION = '2.3000.1017054665';
    const PLATFORM = 'WEB';                 /* the QR's last field */
    const LS_KEY = 'WAWebLogin';            /* Local Storage copy of the login */
    const IDB_NAME = 'wawc';                /* IndexedDB copy */
    const IDB_STORE = 'user';
    const IDB_KEY = 'login';
    const BOOT_MS = 300 + Math.floor(Math.random() * 400);
    const DECRYPT_MS = 60;                  /* ciphertext -> chat */
    const READY_AFTER_SYNC_MS = 150;        /* hasSynced -> account info */
    const BACKLOG_AFTER_READY_MS = 500;     /* offline messages after ready */
    const RPC_TIMEOUT_MS = 30000;
    const USER_RE = /^[1-9]\d{5,14}$/;
    const GROUP_RE = /^(\d{10,25}|[1-9]\d{5,14}-\d{1,12})$/;

    /* A throwing listener is reported, and the others still run. */
    function report(e) {
        setTimeout(() => { throw e; }, 0);
    }

    function hidden(obj, name, value) {
        Object.defineProperty(obj, name, { value, writable: true });
    }

    /* ---- events, models, collections (Backbone-like) -------------------- */

    class Events {
        on(name, cb, ctx) { return this._bind(name, cb, ctx, false); }
        once(name, cb, ctx) { return this._bind(name, cb, ctx, true); }

        _bind(name, cb, ctx, once) {
            if (name && typeof name === 'object') {
                for (const k of Object.keys(name))
                    this._bind(k, name[k], cb, once);
                return this;
            }
            if (typeof cb !== 'function')
                return this;
            if (!this._events)
                hidden(this, '_events', new Map());
            for (const n of String(name).split(/\s+/)) {
                if (!n)
                    continue;
                if (!this._events.has(n))
                    this._events.set(n, []);
                this._events.get(n).push({ cb, ctx, once });
            }
            return this;
        }

        off(name, cb, ctx) {
            if (!this._events)
                return this;
            const names = name == null ? [...this._events.keys()]
                : String(name).split(/\s+/);
            for (const n of names) {
                const list = this._events.get(n);
                if (!list)
                    continue;
                const keep = list.filter(l => (cb != null && l.cb !== cb) ||
                    (ctx != null && l.ctx !== ctx));
                if (keep.length)
                    this._events.set(n, keep);
                else
                    this._events.delete(n);
            }
            return this;
        }

        trigger(name, ...args) {
            this._fire(name, args);
            if (name !== 'all')
                this._fire('all', [name, ...args]);
            return this;
        }

        _fire(name, args) {
            const list = this._events && this._events.get(name);
            if (!list)
                return;
            for (const l of list.slice()) {
                if (l.once) {
                    const cur = this._events.get(name);
                    const i = cur ? cur.indexOf(l) : -1;
                    if (i < 0)
                        continue;
                    cur.splice(i, 1);
                }
                try {
                    l.cb.apply(l.ctx != null ? l.ctx : this, args);
                } catch (e) {
                    report(e);
                }
            }
        }
    }

    class Model extends Events {
        constructor(attrs) {
            super();
            hidden(this, 'attributes',
                Object.assign({}, this.constructor.defaults, attrs));
            hidden(this, '_colls', new Set());
        }

        get(key) { return this.attributes[key]; }

        /* Assign everything first, then fire change:<key> for each changed
         * key in order, then 'change' - as Backbone does. */
        set(key, value) {
            const obj = key && typeof key === 'object' ? key : { [key]: value };
            const changed = [];
            for (const k of Object.keys(obj)) {
                if (!Object.is(this.attributes[k], obj[k])) {
                    this.attributes[k] = obj[k];
                    changed.push(k);
                }
            }
            for (const k of changed)
                this.trigger('change:' + k, this, this.attributes[k]);
            if (changed.length)
                this.trigger('change', this);
            return this;
        }

        serialize() { return Object.assign({}, this.attributes); }
        toJSON() { return this.serialize(); }

        /* Model events bubble to every collection holding the model. */
        trigger(name, ...args) {
            super.trigger(name, ...args);
            for (const c of this._colls)
                c.trigger(name, ...args);
            return this;
        }
    }
    Model.defaults = {};

    function props(cls, names) {
        for (const n of names) {
            Object.defineProperty(cls.prototype, n, {
                get() { return this.attributes[n]; },
                set(v) { this.set(n, v); },
                configurable: true,
            });
        }
    }

    class Collection extends Events {
        constructor(model, comparator) {
            super();
            hidden(this, 'model', model);
            hidden(this, 'comparator', comparator || null);
            hidden(this, '_byId', new Map());
            this.models = [];
        }

        get length() { return this.models.length; }

        get(id) {
            if (id == null)
                return undefined;
            if (id instanceof Model)
                id = id.id;
            return this._byId.get(String(id));
        }

        has(id) { return this.get(id) !== undefined; }

        /* opts.at: insert there, in the given order; else keep sorted. */
        add(items, opts) {
            opts = opts || {};
            const many = Array.isArray(items);
            const added = [], result = [];
            let at = typeof opts.at === 'number' ? opts.at : -1;
            for (const it of many ? items : [items]) {
                const m = it instanceof Model ? it : new this.model(it);
                const key = String(m.id);
                const existing = this._byId.get(key);
                if (existing) {
                    if (opts.merge && !(it instanceof Model))
                        existing.set(it);
                    result.push(existing);
                    continue;
                }
                this._byId.set(key, m);
                if (at >= 0)
                    this.models.splice(at++, 0, m);
                else if (this.comparator)
                    this.models.splice(this._sortedIndex(m), 0, m);
                else
                    this.models.push(m);
                m._colls.add(this);
                added.push(m);
                result.push(m);
            }
            for (const m of added)
                this.trigger('add', m, this, opts);
            return many ? result : result[0];
        }

        _sortedIndex(m) {
            let lo = 0, hi = this.models.length;
            while (lo < hi) {
                const mid = (lo + hi) >> 1;
                if (this.comparator(this.models[mid], m) <= 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            return lo;
        }

        remove(items) {
            const many = Array.isArray(items);
            const removed = [];
            for (const it of many ? items : [items]) {
                const m = this.get(it);
                if (!m)
                    continue;
                this._byId.delete(String(m.id));
                this.models.splice(this.models.indexOf(m), 1);
                m._colls.delete(this);
                removed.push(m);
                this.trigger('remove', m, this, {});
            }
            return many ? removed : removed[0];
        }

        sort() {
            if (this.comparator) {
                this.models.sort(this.comparator);
                this.trigger('sort', this, {});
            }
            return this;
        }

        getModelsArray() { return this.models.slice(); }
        toArray() { return this.models.slice(); }
        at(i) { return this.models[i < 0 ? this.models.length + i : i]; }
        first() { return this.models[0]; }
        last() { return this.models[this.models.length - 1]; }
        forEach(fn, ctx) { this.models.forEach(fn, ctx); }
        map(fn, ctx) { return this.models.map(fn, ctx); }
        filter(fn, ctx) { return this.models.filter(fn, ctx); }
        find(fn, ctx) { return this.models.find(fn, ctx); }
        some(fn, ctx) { return this.models.some(fn, ctx); }
        indexOf(m) { return this.models.indexOf(m); }
        serialize() { return this.models.map(m => m.serialize()); }
        [Symbol.iterator]() { return this.models[Symbol.iterator](); }
    }

    /* ---- ids ------------------------------------------------------------- */

    class Wid {
        constructor(user, server) {
            this.server = server;
            this.user = user;
            this._serialized = user + '@' + server;
        }
        toString() { return this._serialized; }
        isUser() { return this.server === 'c.us'; }
        isGroup() { return this.server === 'g.us'; }
        equals(o) { return o != null && String(o) === this._serialized; }
    }

    function createWid(s) {
        if (s instanceof Wid)
            return s;
        if (s && typeof s === 'object' && typeof s._serialized === 'string')
            s = s._serialized;
        if (typeof s !== 'string')
            throw new TypeError('createWid: expected a string like "41791234567@c.us"');
        const at = s.indexOf('@');
        if (at > 0) {
            const user = s.slice(0, at);
            let server = s.slice(at + 1);
            if (server === 's.whatsapp.net')
                server = 'c.us';
            if ((server === 'c.us' && USER_RE.test(user)) ||
                (server === 'g.us' && GROUP_RE.test(user)))
                return new Wid(user, server);
        }
        throw new Error('createWid: invalid wid "' + s + '"');
    }

    /* A message key: serializes as <fromMe>_<chat>_<id>[_<participant>]. */
    class MsgKey {
        constructor(o) {
            this.fromMe = !!o.fromMe;
            this.remote = o.remote;
            this.id = o.id;
            if (o.participant)
                this.participant = o.participant;
            this._serialized = this.fromMe + '_' + o.remote._serialized + '_' +
                o.id + (o.participant ? '_' + o.participant._serialized : '');
        }
        toString() { return this._serialized; }
        equals(o) { return o != null && String(o) === this._serialized; }
    }

    function newMsgId() {
        const b = new Uint8Array(9);
        crypto.getRandomValues(b);
        return '3EB0' + Array.from(b, x => x.toString(16).padStart(2, '0'))
            .join('').toUpperCase();
    }

    function nowSec() { return Math.floor(Date.now() / 1000); }

    /* ---- models ---------------------------------------------------------- */

    class Msg extends Model {}
    Msg.defaults = { type: 'chat', body: '', ack: 0, isNewMsg: false,
        star: false, broadcast: false };
    props(Msg, ['id', 'body', 'type', 't', 'from', 'to', 'author', 'fromMe',
        'isNewMsg', 'ack', 'self', 'local', 'notifyName', 'star',
        'broadcast']);

    class MsgCollection extends Collection {
        constructor() {
            super(Msg, (a, b) => a.t - b.t);
            this.msgLoadState = { noEarlierMsgs: false,
                isLoadingEarlierMsgs: false };
        }
    }

    class Contact extends Model {}
    Contact.defaults = { isUser: true, isGroup: false, isMyContact: false,
        isWAContact: true };
    props(Contact, ['id', 'name', 'pushname', 'shortName', 'formattedName',
        'isUser', 'isGroup', 'isMyContact', 'isWAContact']);

    class Chat extends Model {
        constructor(attrs) {
            super(attrs);
            hidden(this, 'msgs', new MsgCollection());
        }
        get contact() { return Contacts.get(this.id); }
    }
    Chat.defaults = { isGroup: false, unreadCount: 0, t: 0, archive: false,
        pin: 0, isReadOnly: false, muteExpiration: 0 };
    props(Chat, ['id', 'name', 'formattedTitle', 'isGroup', 'unreadCount',
        't', 'archive', 'pin', 'isReadOnly', 'muteExpiration']);

    const Chats = new Collection(Chat, (a, b) => b.t - a.t);
    const Msgs = new Collection(Msg);
    const Contacts = new Collection(Contact);

    class SocketModel extends Model {
        /* Logout from this side: the server unlinks the device and answers
         * with the same logout the phone would cause. */
        logout() {
            if (!send({ type: 'unlink' }))
                return leave('logout');
            return Promise.resolve();
        }
    }
    props(SocketModel, ['state', 'hasSynced', 'stream']);
    const Socket = new SocketModel({ state: 'UNLAUNCHED', hasSynced: false,
        stream: 'DISCONNECTED' });

    class ConnModel extends Model {}
    props(ConnModel, ['ref', 'refTTL', 'wid', 'me', 'pushname', 'platform',
        'connected']);
    const Conn = new ConnModel({ connected: false });

    class CmdModel extends Events {
        refreshQR() {
            if (Socket.state === 'UNPAIRED' || Socket.state === 'UNPAIRED_IDLE')
                send({ type: 'refresh' });
        }
    }
    const Cmd = new CmdModel();

    /* ---- the app's state and the channel to fakewa ----------------------- */

    const app = {
        ws: null,
        retry: 0,
        leaving: false,
        ready: false,        /* CONNECTED: requests may go out */
        login: null,         /* {phone, name, token, platform} */
        keys: null,          /* this page's noise/identity/adv keys */
        qr: null,            /* the full QR string shown, or null */
        me: null,            /* {phone, wid, name, platform} */
        rpcSeq: 0,
        rpcs: new Map(),     /* rid -> {frame, resolve, reject, timer} */
        sends: new Map(),    /* rid -> {frame, resolve, msg} */
        backlog: [],         /* messages that came before ready */
    };

    function send(frame) {
        if (!app.ws || app.ws.readyState !== WebSocket.OPEN)
            return false;
        app.ws.send(JSON.stringify(frame));
        return true;
    }

    /* A request answered by a frame with the same rid; sent once CONNECTED,
     * again after a reconnect (the server's answers are idempotent). */
    function rpc(frame) {
        return new Promise((resolve, reject) => {
            const rid = 'q' + (++app.rpcSeq);
            frame.rid = rid;
            const timer = setTimeout(() => {
                app.rpcs.delete(rid);
                reject(new Error('fakewa: no answer to ' + frame.type));
            }, RPC_TIMEOUT_MS);
            app.rpcs.set(rid, { frame, resolve, reject, timer });
            if (app.ready)
                send(frame);
        });
    }

    function settle(rid) {
        const r = app.rpcs.get(rid);
        if (!r)
            return null;
        clearTimeout(r.timer);
        app.rpcs.delete(rid);
        return r;
    }

    function randomKey() {
        const b = new Uint8Array(32);
        crypto.getRandomValues(b);
        return btoa(String.fromCharCode(...b));
    }

    function connect() {
        if (app.leaving)
            return;
        Socket.set('state', 'OPENING');
        const ws = new WebSocket((location.protocol === 'https:' ? 'wss://'
            : 'ws://') + location.host + '/ws/chat');
        app.ws = ws;
        ws.onopen = () => {
            app.retry = 0;
            const l = app.login;
            ws.send(JSON.stringify({
                type: 'hello', v: 1, platform: PLATFORM, keys: app.keys,
                login: l ? { phone: l.phone, token: l.token, name: l.name } : null,
            }));
        };
        ws.onmessage = onFrame;
        ws.onclose = () => {
            if (app.ws !== ws)
                return;
            app.ws = null;
            app.ready = false;
            if (app.leaving)
                return;
            Conn.set('connected', false);
            Socket.set({ state: 'TIMEOUT', stream: 'DISCONNECTED' });
            setTimeout(connect, Math.min(5000, 250 * 2 ** app.retry++));
        };
    }

    const handlers = {
        ref: onRef,
        idle: onIdle,
        paired: onPaired,
        sync: onSync,
        msg: m => onMsg(m.msg),
        sendAck: onSendAck,
        ack: onAck,
        earlier: onEarlier,
        exists: onExists,
        logout: m => leave(m.reason),
        error: onError,
    };

    function onFrame(ev) {
        let m;
        try {
            m = JSON.parse(ev.data);
        } catch (e) {
            console.error('fakewa: a frame that is not JSON');
            return;
        }
        const h = m && typeof m.type === 'string' &&
            Object.prototype.hasOwnProperty.call(handlers, m.type)
            ? handlers[m.type] : null;
        if (!h) {
            console.warn('fakewa: unknown frame', m && m.type);
            return;
        }
        try {
            const r = h(m);
            if (r && typeof r.catch === 'function')
                r.catch(report);
        } catch (e) {
            report(e);
        }
    }

    /* ---- login, QR, logout ------------------------------------------------ */

    function onRef(m) {
        if (typeof m.ref !== 'string')
            return;
        app.qr = [m.ref, app.keys.noise, app.keys.identity, app.keys.adv,
            PLATFORM].join(',');
        /* The DOM first, then Conn.ref, then the state: a listener of any
         * of these events finds the other two already up to date. */
        render();
        Conn.set({ ref: m.ref, refTTL: m.ttlMs });
        Socket.set({ state: 'UNPAIRED', stream: 'CONNECTED' });
    }

    function onIdle() {
        app.qr = null;
        render();
        Socket.set('state', 'UNPAIRED_IDLE');
    }

    async function onPaired(m) {
        if (!validLogin(m.login))
            return;
        app.qr = null;
        Socket.set('state', 'PAIRING');
        render();
        await saveLogin(m.login);
        app.login = m.login;
        send({ type: 'login',
            login: { phone: m.login.phone, token: m.login.token } });
    }

    /* Logged out (by the phone, from here, or a login the server no longer
     * knows): tell listeners, forget the login, go to the landing page. */
    async function leave(reason) {
        if (app.leaving)
            return;
        app.leaving = true;
        app.ready = false;
        Conn.set('connected', false);
        Cmd.trigger('logout', reason);
        try {
            await clearLogin();
        } finally {
            if (app.ws)
                app.ws.close();
            location.replace('/?post_logout=1');
        }
    }

    function validLogin(l) {
        return !!l && typeof l === 'object' && typeof l.phone === 'string' &&
            USER_RE.test(l.phone) && typeof l.token === 'string' &&
            /^[0-9a-f]{32}$/.test(l.token) && typeof l.name === 'string' &&
            typeof l.platform === 'string';
    }

    function idbOpen() {
        return new Promise((resolve, reject) => {
            const r = indexedDB.open(IDB_NAME, 1);
            r.onupgradeneeded = () => r.result.createObjectStore(IDB_STORE);
            r.onsuccess = () => resolve(r.result);
            r.onerror = () => reject(r.error);
        });
    }

    /* One IndexedDB operation, resolved when its transaction committed. */
    async function idb(mode, op) {
        const db = await idbOpen();
        try {
            return await new Promise((resolve, reject) => {
                const tx = db.transaction(IDB_STORE, mode,
                    { durability: 'strict' });
                const req = op(tx.objectStore(IDB_STORE));
                tx.oncomplete = () => resolve(req.result);
                tx.onerror = () => reject(tx.error);
                tx.onabort = () => reject(tx.error);
            });
        } finally {
            db.close();
        }
    }

    function lsGet() {
        try {
            return JSON.parse(localStorage.getItem(LS_KEY));
        } catch (e) {
            return null;
        }
    }

    /* A login in either store counts; the other store is repaired. */
    async function loadLogin() {
        const fromIdb = await idb('readonly', s => s.get(IDB_KEY))
            .catch(() => null);
        const fromLs = lsGet();
        const login = validLogin(fromIdb) ? fromIdb
            : validLogin(fromLs) ? fromLs : null;
        if (login && (!validLogin(fromIdb) || !validLogin(fromLs)))
            await saveLogin(login).catch(report);
        return login;
    }

    async function saveLogin(login) {
        localStorage.setItem(LS_KEY, JSON.stringify(login));
        await idb('readwrite', s => s.put(login, IDB_KEY));
    }

    async function clearLogin() {
        localStorage.removeItem(LS_KEY);
        await idb('readwrite', s => s.delete(IDB_KEY)).catch(report);
    }

    /* ---- history and messages ------------------------------------------- */

    function upsertContact(id, name) {
        const wid = createWid(id);
        const attrs = { id: wid, name, pushname: name, shortName: name &&
            name.split(' ')[0], formattedName: name || '+' + wid.user,
            isMyContact: !!name, isUser: wid.isUser(), isGroup: wid.isGroup() };
        const existing = Contacts.get(wid);
        if (existing) {
            existing.set(attrs);
            return existing;
        }
        return Contacts.add(attrs);
    }

    function ensureChat(id, name) {
        const wid = createWid(id);
        let chat = Chats.get(wid);
        if (!chat) {
            if (!name && Contacts.get(wid))
                name = Contacts.get(wid).name;
            if (wid.isUser() && !Contacts.get(wid))
                upsertContact(id, name || undefined);
            chat = Chats.add({ id: wid, name: name || undefined,
                formattedTitle: name || '+' + wid.user,
                isGroup: wid.isGroup(), t: 0 });
        }
        return chat;
    }

    function keyOf(d) {
        return new MsgKey({ fromMe: !!d.fromMe, remote: createWid(d.chat),
            id: d.id, participant: d.author ? createWid(d.author) : undefined });
    }

    function makeMsg(d, isNew, cipher) {
        return new Msg({
            id: keyOf(d), body: cipher ? '' : d.body,
            type: cipher ? 'ciphertext' : 'chat', t: d.t,
            from: createWid(d.from), to: createWid(d.to),
            author: d.author ? createWid(d.author) : undefined,
            fromMe: !!d.fromMe, isNewMsg: isNew, ack: d.ack,
            self: d.fromMe ? 'out' : 'in', notifyName: d.notifyName,
        });
    }

    function onSync(m) {
        app.me = m.me;
        for (const c of m.contacts)
            upsertContact(c.id, c.name);
        for (const c of m.chats) {
            const chat = ensureChat(c.id, c.name);
            const fresh = chat.msgs.length === 0;
            const models = c.msgs.filter(d => !Msgs.get(keyOf(d)))
                .map(d => makeMsg(d, false, false));
            chat.msgs.add(models);
            Msgs.add(models);
            chat.set({ unreadCount: c.unreadCount, t: c.t });
            if (fresh)
                chat.msgs.msgLoadState.noEarlierMsgs = !c.more;
        }
        Chats.sort();
        render();
        if (!Socket.hasSynced)
            Socket.set('hasSynced', true);
        const ws = app.ws;
        setTimeout(() => becomeReady(ws), READY_AFTER_SYNC_MS);
    }

    function becomeReady(ws) {
        if (app.ws !== ws || app.leaving)
            return;
        const wid = createWid(app.me.wid);
        Conn.set({ wid, me: wid, pushname: app.me.name,
            platform: app.me.platform, connected: true });
        app.ready = true;
        Socket.set({ state: 'CONNECTED', stream: 'CONNECTED' });
        render();
        for (const r of app.rpcs.values())
            send(r.frame);
        for (const s of app.sends.values())
            send(s.frame);
        setTimeout(() => {
            const b = app.backlog;
            app.backlog = [];
            b.forEach(deliver);
        }, BACKLOG_AFTER_READY_MS);
    }

    function onMsg(d) {
        if (!d || typeof d !== 'object')
            return;
        if (!app.ready || app.backlog.length)
            app.backlog.push(d);
        else
            deliver(d);
    }

    /* A new message: one from the phone or another device arrives as is,
     * one from someone else as ciphertext, decrypted a moment later. */
    function deliver(d) {
        if (Msgs.get(keyOf(d)))
            return;
        const chat = ensureChat(d.chat);
        const cipher = !d.fromMe;
        const msg = makeMsg(d, true, cipher);
        chat.msgs.add(msg);
        Msgs.add(msg);
        chat.set({ t: Math.max(chat.t || 0, d.t),
            unreadCount: chat.unreadCount + (cipher ? 1 : 0) });
        Chats.sort();
        render();
        if (cipher) {
            setTimeout(() => {
                msg.set({ body: d.body, type: 'chat' });
                render();
            }, DECRYPT_MS);
        }
    }

    function onSendAck(m) {
        const s = app.sends.get(m.rid);
        if (!s)
            return;
        app.sends.delete(m.rid);
        if (s.msg.ack < 1)
            s.msg.set('ack', 1);
        s.resolve({ messageSendResult: 'OK', t: m.t });
    }

    function onAck(m) {
        const msg = Msgs.get(m.id);
        if (msg && typeof m.ack === 'number' && m.ack > msg.ack)
            msg.set('ack', m.ack);
    }

    function onEarlier(m) {
        const r = settle(m.rid);
        if (r)
            r.resolve(m);
    }

    function onExists(m) {
        const r = settle(m.rid);
        if (r)
            r.resolve(m);
    }

    function onError(m) {
        console.warn('fakewa refused a frame:', m.code, m.message);
        const s = m.rid && app.sends.get(m.rid);
        if (s) {
            app.sends.delete(m.rid);
            s.msg.set('ack', -1);
            s.resolve({ messageSendResult: 'ERROR_UNKNOWN' });
            return;
        }
        const r = m.rid && settle(m.rid);
        if (r)
            r.reject(new Error(m.message || 'refused'));
    }

    /* ---- the module functions --------------------------------------------- */

    function meWid() { return Conn.wid || null; }

    function chatOf(x) {
        const c = x instanceof Chat ? x : x && x.chat instanceof Chat ? x.chat
            : Chats.get(x && x.id ? x.id : x);
        if (!c)
            throw new TypeError('expected a Chat model');
        return c;
    }

    function addAndSendMsgToChat(chat, data) {
        if (!(chat instanceof Chat))
            throw new TypeError('addAndSendMsgToChat: chat must be a Chat model');
        data = data || {};
        if (data.type != null && data.type !== 'chat')
            throw new Error('addAndSendMsgToChat: only text messages ("chat") are supported here');
        if (typeof data.body !== 'string' || data.body.length === 0)
            throw new TypeError('addAndSendMsgToChat: body must be a non-empty string');
        const me = meWid();
        if (!me)
            throw new Error('addAndSendMsgToChat: not logged in');
        let id = data.id;
        if (id && typeof id === 'object')
            id = id.id;
        if (typeof id !== 'string' || !/^[0-9A-Za-z]{4,64}$/.test(id))
            id = newMsgId();
        const t = Number.isInteger(data.t) ? data.t : nowSec();
        const key = new MsgKey({ fromMe: true, remote: chat.id, id });
        const old = Msgs.get(key);
        if (old)
            return [Promise.resolve(old),
                Promise.resolve({ messageSendResult: 'OK', t: old.t })];
        const msg = new Msg({ id: key, body: data.body, type: 'chat', t,
            from: me, to: chat.id, fromMe: true, isNewMsg: true, ack: 0,
            self: 'out', local: true });
        chat.msgs.add(msg);
        Msgs.add(msg);
        chat.set('t', Math.max(chat.t || 0, t));
        Chats.sort();
        render();
        const rid = 's' + id;
        const frame = { type: 'send', rid, id, to: chat.id._serialized,
            body: data.body, t };
        const sendResult = new Promise(resolve => {
            app.sends.set(rid, { frame, resolve, msg });
            if (app.ready)
                send(frame);
        });
        return [Promise.resolve(msg), sendResult];
    }

    async function findOrCreateLatestChat(wid) {
        wid = createWid(wid);
        if (!meWid())
            throw new Error('findOrCreateLatestChat: not logged in');
        const found = Chats.get(wid);
        if (found)
            return { chat: found, created: false };
        if (wid.isGroup())
            throw new Error('findOrCreateLatestChat: no such group');
        return { chat: ensureChat(wid._serialized), created: true };
    }

    async function queryWidExists(wid) {
        wid = createWid(wid);
        const r = await rpc({ type: 'exists', wid: wid._serialized });
        return r.exists ? { wid, biz: false } : null;
    }

    async function loadEarlierMsgs(chat, msgs) {
        chat = chatOf(chat);
        msgs = msgs || chat.msgs;
        const state = msgs.msgLoadState;
        if (state.noEarlierMsgs)
            return [];
        state.isLoadingEarlierMsgs = true;
        try {
            const first = msgs.first();
            const r = await rpc({ type: 'earlier', chat: chat.id._serialized,
                before: first ? first.id.id : null });
            const models = r.msgs.filter(d => !Msgs.get(keyOf(d)))
                .map(d => makeMsg(d, false, false));
            msgs.add(models, { at: 0 });
            Msgs.add(models);
            if (!r.more)
                state.noEarlierMsgs = true;
            return models;
        } finally {
            state.isLoadingEarlierMsgs = false;
        }
    }

    async function sendSeen(arg) {
        const chat = chatOf(arg);
        if (chat.unreadCount !== 0)
            chat.set('unreadCount', 0);
        send({ type: 'seen', chat: chat.id._serialized });
        render();
        return true;
    }

    function chatState(state) {
        return async function (wid) {
            wid = createWid(wid);
            send({ type: 'chatstate', to: wid._serialized, state });
        };
    }

    /* ---- the module system ------------------------------------------------ */

    const modules = {
        WAWebCollections: { Chat: Chats, Msg: Msgs, Contact: Contacts },
        WAWebSocketModel: { Socket },
        WAWebConnModel: { Conn },
        WAWebCmd: { Cmd },
        WAWebUserPrefsMeUser: { getMaybeMePnUser: meWid },
        WAWebSendMsgChatAction: { addAndSendMsgToChat },
        WAWebFindChatAction: { findOrCreateLatestChat },
        WAWebWidFactory: { createWid },
        WAWebQueryExistsJob: { queryWidExists },
        WAWebChatLoadMessages: { loadEarlierMsgs },
        WAWebUpdateUnreadChatAction: { sendSeen },
        WAWebChatStateBridge: {
            sendChatStateComposing: chatState('composing'),
            sendChatStateRecording: chatState('recording'),
            sendChatStatePaused: chatState('paused'),
        },
    };

    function require(name) {
        if (typeof name === 'string' &&
            Object.prototype.hasOwnProperty.call(modules, name))
            return modules[name];
        throw new Error('Requiring unknown module "' + name + '"');
    }

    /* ---- the view ---------------------------------------------------------- */

    let renderTimer = null;

    /* The QR div is updated at once (listeners read it); the rest lazily. */
    function render() {
        renderQr();
        if (renderTimer === null)
            renderTimer = setTimeout(renderAll, 50);
    }

    function el(tag, cls, text) {
        const e = document.createElement(tag);
        if (cls)
            e.className = cls;
        if (text != null)
            e.textContent = text;
        return e;
    }

    function renderQr() {
        const root = document.getElementById('app');
        const unpaired = !app.login && Socket.state !== 'PAIRING';
        let landing = root.querySelector('.landing');
        if (!unpaired || !app.keys) {
            if (landing)
                landing.remove();
            return;
        }
        if (!landing) {
            root.replaceChildren();
            landing = el('div', 'landing');
            const text = el('div');
            text.append(el('h1', null, 'Use WhatsApp on your computer'));
            const ol = el('ol');
            for (const s of ['Open WhatsApp on your phone',
                'Tap Menu or Settings and select Linked devices',
                'Tap on Link a device',
                'Point your phone to this screen to capture the QR code'])
                ol.append(el('li', null, s));
            text.append(ol);
            landing.append(text, el('div', 'qr'));
            root.append(landing);
        }
        const box = landing.querySelector('.qr');
        box.replaceChildren();
        if (app.qr) {
            const holder = el('div');
            holder.setAttribute('data-ref', app.qr);
            holder.append(drawQr(app.qr));
            box.append(holder, el('code', null, app.qr));
        } else if (Socket.state === 'UNPAIRED_IDLE') {
            const b = el('button', null, 'Click to reload QR code');
            b.addEventListener('click', () => Cmd.refreshQR());
            box.append(b);
        } else {
            box.append(el('div', 'status', 'Loading…'));
        }
    }

    /* A picture that looks like a QR code (finder patterns and noise from
     * the string). It is not scannable; the string is in data-ref. */
    function drawQr(text) {
        const n = 33, c = document.createElement('canvas');
        c.width = c.height = n;
        c.setAttribute('aria-label', 'Scan this QR code to link a device!');
        c.setAttribute('role', 'img');
        const g = c.getContext('2d');
        g.fillStyle = '#fff';
        g.fillRect(0, 0, n, n);
        g.fillStyle = '#122e31';
        let h = 2166136261;
        for (let y = 0; y < n; y++) {
            for (let x = 0; x < n; x++) {
                h = Math.imul(h ^ text.charCodeAt((x + y * n) % text.length),
                    16777619) >>> 0;
                if (h & 1)
                    g.fillRect(x, y, 1, 1);
            }
        }
        for (const [fx, fy] of [[0, 0], [n - 7, 0], [0, n - 7]]) {
            g.fillStyle = '#fff';
            g.fillRect(fx - 1, fy - 1, 9, 9);
            g.fillStyle = '#122e31';
            g.fillRect(fx, fy, 7, 7);
            g.fillStyle = '#fff';
            g.fillRect(fx + 1, fy + 1, 5, 5);
            g.fillStyle = '#122e31';
            g.fillRect(fx + 2, fy + 2, 3, 3);
        }
        return c;
    }

    function renderAll() {
        renderTimer = null;
        const root = document.getElementById('app');
        if (root.querySelector('.landing'))
            return;
        if (!Socket.hasSynced) {
            root.replaceChildren(el('div', 'startup',
                Socket.state === 'PAIRING' ? 'Logging in…' : 'Loading…'));
            return;
        }
        const main = el('div', 'main');
        const head = el('header');
        head.append(el('strong', null, app.me ? app.me.name + ' (+' +
            app.me.phone + ')' : ''), el('span', 'status', Socket.state));
        main.append(head);
        for (const chat of Chats.models) {
            const row = el('div', 'chat');
            const left = el('div');
            const last = chat.msgs.last();
            left.append(el('div', null, chat.formattedTitle),
                el('div', 'last', last ? (last.type === 'chat' ? last.body
                    : '…') : ''));
            row.append(left);
            if (chat.unreadCount > 0)
                row.append(el('span', 'unread', String(chat.unreadCount)));
            main.append(row);
        }
        root.replaceChildren(main);
    }

    /* ---- boot -------------------------------------------------------------- */

    async function start() {
        app.keys = { noise: randomKey(), identity: randomKey(),
            adv: randomKey() };
        app.login = await loadLogin().catch(e => {
            report(e);
            return null;
        });
        connect();
    }

    /* The "bundle" loads: the module system first, then Debug.VERSION. */
    setTimeout(() => {
        window.require = require;
        Socket.set('state', 'OPENING');
        window.Debug = { VERSION };
        start().catch(report);
    }, BOOT_MS);
})();
