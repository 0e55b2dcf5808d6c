"""A minimal RFC 6455 WebSocket client for the integration tests (stdlib only).

    ws = wsclient.connect("127.0.0.1", port, "/?token=...")
    frame = ws.recv_json(timeout=5)        # {"type":..., "seq":...}
    ws.close(1000)

connect() checks the handshake: status 101, Upgrade/Connection headers and
Sec-WebSocket-Accept computed from our random key. A refused upgrade raises
Refused with the HTTP status, headers and body. Client frames are masked;
server frames must not be. Pings are answered with pongs; a close frame
raises Closed(code, reason) after being echoed.
"""

import base64
import hashlib
import json
import os
import select
import socket
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


class Refused(Exception):
    """The server answered the upgrade with a plain HTTP response."""

    def __init__(self, status, headers, body):
        super().__init__("upgrade refused with HTTP %d: %r" % (status, body[:200]))
        self.status, self.headers, self.body = status, headers, body


class Closed(Exception):
    """The server sent a close frame (code, reason) or the socket ended
    (code None)."""

    def __init__(self, code, reason=""):
        super().__init__("closed: code=%r reason=%r" % (code, reason))
        self.code, self.reason = code, reason


class ProtocolError(Exception):
    pass


def read_http_response(sock, timeout=5.0):
    """Read a status line and headers (and a Content-Length body) from sock.
    Returns (status, {lower-name: value}, body, leftover bytes)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = _recv_some(sock, deadline)
        if not chunk:
            raise ProtocolError("connection closed before the response headers: %r" % buf)
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ProtocolError("bad status line %r" % lines[0])
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if status != 101:
        length = int(headers.get("content-length", "0"))
        body, rest = rest, b""
        while len(body) < length:
            chunk = _recv_some(sock, deadline)
            if not chunk:
                break
            body += chunk
    return status, headers, body, rest


def _recv_some(sock, deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    sock.settimeout(left)
    try:
        return sock.recv(65536)
    except socket.timeout:
        raise TimeoutError("timed out")


def upgrade_request(host, port, path, headers=None, key=None):
    """The bytes of an upgrade request; headers may override or add."""
    h = {
        "Host": "%s:%d" % (host, port),
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key or base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    for k, v in (headers or {}).items():
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v
    lines = ["GET %s HTTP/1.1" % path] + ["%s: %s" % kv for kv in h.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def raw_upgrade(host, port, path, headers=None, timeout=5.0):
    """Send an upgrade request on a fresh socket; return (status, headers,
    body, sock). The caller closes sock."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.sendall(upgrade_request(host, port, path, headers))
    status, hdrs, body, _ = read_http_response(sock, timeout)
    return status, hdrs, body, sock


def connect(host, port, path="/", headers=None, timeout=5.0, rcvbuf=None):
    """Open a WebSocket; raise Refused if the server answers otherwise."""
    key = base64.b64encode(os.urandom(16)).decode()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        # Before connect, so the window is small from the start.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect((host, port))
    sock.sendall(upgrade_request(host, port, path, headers, key))
    status, hdrs, body, rest = read_http_response(sock, timeout)
    if status != 101:
        sock.close()
        raise Refused(status, hdrs, body)
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    if hdrs.get("sec-websocket-accept") != accept:
        sock.close()
        raise ProtocolError("bad Sec-WebSocket-Accept %r" % hdrs.get("sec-websocket-accept"))
    if hdrs.get("upgrade", "").lower() != "websocket" or "upgrade" not in hdrs.get("connection", "").lower():
        sock.close()
        raise ProtocolError("bad upgrade headers %r" % hdrs)
    return WSClient(sock, rest)


def replay(host, port, path, quiet=2.0):
    """Connect and read JSON frames until the server has been quiet for
    `quiet` seconds (a ?since= replay is over); the frames, in order."""
    ws = connect(host, port, path)
    frames = []
    try:
        while True:
            frames.append(ws.recv_json(timeout=quiet))
    except (socket.timeout, TimeoutError, Closed):
        pass
    finally:
        ws.close()
    return frames


class WSClient:
    def __init__(self, sock, buffered=b""):
        self.sock = sock
        self.buf = bytearray(buffered)
        self.closed = False
        self.pings = 0

    # -- sending (always masked, RFC 6455 5.3) --
    def send_frame(self, opcode, payload=b"", fin=True):
        if isinstance(payload, str):
            payload = payload.encode()
        head = bytearray([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            head.append(0x80 | n)
        elif n <= 0xFFFF:
            head.append(0x80 | 126)
            head += struct.pack("!H", n)
        else:
            head.append(0x80 | 127)
            head += struct.pack("!Q", n)
        mask = os.urandom(4)
        head += mask
        body = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.sock.sendall(bytes(head) + body)

    def send_text(self, text):
        self.send_frame(OP_TEXT, text)

    def send_close(self, code=1000, reason=""):
        self.send_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode())

    def close(self, code=1000):
        """Send a close frame, wait briefly for the echo, close the socket."""
        if not self.closed:
            try:
                self.send_close(code)
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline:
                    op, _ = self.recv_frame(deadline - time.monotonic(), raise_on_close=False)
                    if op == OP_CLOSE or op is None:
                        break
            except (OSError, TimeoutError, ProtocolError):
                pass
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    # -- receiving --
    def _fill(self, need, deadline):
        while len(self.buf) < need:
            chunk = _recv_some(self.sock, deadline)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def recv_frame(self, timeout=5.0, raise_on_close=True):
        """One data or close frame as (opcode, payload bytes). Pings are
        answered and skipped. On a close frame: echo it, then raise Closed
        (or return (OP_CLOSE, payload) with raise_on_close=False). On EOF:
        raise Closed(None) or return (None, b"")."""
        deadline = time.monotonic() + timeout
        while True:
            if not self._fill(2, deadline):
                self.closed = True
                if raise_on_close:
                    raise Closed(None)
                return None, b""
            b0, b1 = self.buf[0], self.buf[1]
            if b1 & 0x80:
                raise ProtocolError("server frame is masked")
            if b0 & 0x70:
                raise ProtocolError("reserved bits set")
            n, off = b1 & 0x7F, 2
            if n == 126:
                if not self._fill(4, deadline):
                    raise Closed(None)
                n, off = struct.unpack("!H", bytes(self.buf[2:4]))[0], 4
            elif n == 127:
                if not self._fill(10, deadline):
                    raise Closed(None)
                n, off = struct.unpack("!Q", bytes(self.buf[2:10]))[0], 10
            if not self._fill(off + n, deadline):
                self.closed = True
                if raise_on_close:
                    raise Closed(None, "truncated frame")
                return None, b""
            payload = bytes(self.buf[off:off + n])
            del self.buf[:off + n]
            op = b0 & 0x0F
            if not b0 & 0x80:
                raise ProtocolError("fragmented server frame")
            if op == OP_PING:
                self.pings += 1
                self.send_frame(OP_PONG, payload)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                reason = payload[2:].decode("utf-8", "replace")
                try:
                    self.send_frame(OP_CLOSE, payload[:2])
                except OSError:
                    pass
                self.closed = True
                if raise_on_close:
                    raise Closed(code, reason)
                return op, payload
            return op, payload

    def recv_json(self, timeout=5.0):
        op, payload = self.recv_frame(timeout)
        if op != OP_TEXT:
            raise ProtocolError("expected a text frame, got opcode %r" % op)
        return json.loads(payload.decode("utf-8"))

    def pending(self, timeout=0.0):
        """Is a frame (or EOF) readable within timeout?"""
        if self.buf:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)
