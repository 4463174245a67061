"""A small IMAP4rev1 client for the lab scripts (stdlib sockets only).

imaplib cannot pipeline, send LITERAL+ MULTIAPPEND, or parse FETCH responses, and the lab
needs all three (2000 APPENDs in seconds; exact UID/flag/INTERNALDATE listings), so this
module speaks just enough IMAP itself: tagged commands, literals both ways, a tokenizer for
responses, modified UTF-7 mailbox names."""

import base64
import re
import socket
import subprocess


class ImapError(Exception):
    """Transport or protocol problem (connection closed, BAD, unparsable reply)."""


class ImapNo(ImapError):
    """A tagged NO/BAD. .code is the response code atom (e.g. UNAVAILABLE) or ''."""

    def __init__(self, command, status, code, text):
        super().__init__(f"{command}: {status} {('[' + code + '] ') if code else ''}{text}".strip())
        self.status, self.code, self.text = status, code, text


class Literal:
    """A message or string to send as a literal."""

    def __init__(self, data):
        self.data = data if isinstance(data, bytes) else data.encode()


def quote(s):
    if isinstance(s, bytes):
        s = s.decode()
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- modified UTF-7 (RFC 3501 5.1.3) ---------------------------------------------------------

def mutf7_encode(name):
    out, buf = [], []

    def flush():
        if buf:
            b = base64.b64encode("".join(buf).encode("utf-16-be")).decode().rstrip("=")
            out.append("&" + b.replace("/", ",") + "-")
            buf.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(name):
    def dec(m):
        s = m.group(1)
        if not s:
            return "&"
        s = s.replace(",", "/")
        return base64.b64decode(s + "=" * (-len(s) % 4)).decode("utf-16-be")
    return re.sub(r"&([A-Za-z0-9+,]*)-", dec, name)


# --- response parsing -------------------------------------------------------------------------

class _Parser:
    """Tokenizes one response: atoms -> str, quoted -> str, literal -> bytes, NIL -> None,
    (...) -> list. An atom may carry a [section] with spaces, as in BODY[HEADER.FIELDS (X)]."""

    def __init__(self, data):
        self.d, self.i = data, 0

    def tokens(self):
        out = []
        while True:
            self._skip_sp()
            if self.i >= len(self.d):
                return out
            out.append(self._token())

    def _skip_sp(self):
        while self.i < len(self.d) and self.d[self.i] == 0x20:
            self.i += 1

    def _token(self):
        d, c = self.d, self.d[self.i]
        if c == 0x28:  # (
            self.i += 1
            items = []
            while True:
                self._skip_sp()
                if self.i >= len(d):
                    raise ImapError("unbalanced parenthesis in server response")
                if d[self.i] == 0x29:  # )
                    self.i += 1
                    return items
                items.append(self._token())
        if c == 0x22:  # "
            self.i += 1
            buf = bytearray()
            while d[self.i] != 0x22:
                if d[self.i] == 0x5C:
                    self.i += 1
                buf.append(d[self.i])
                self.i += 1
            self.i += 1
            return buf.decode("utf-8", "replace")
        if c == 0x7B:  # {N}\r\n<N bytes>
            m = re.compile(rb"\{(\d+)\+?\}\r\n").match(d, self.i)
            if not m:
                raise ImapError("bad literal in server response")
            n = int(m.group(1))
            start = m.end()
            self.i = start + n
            return bytes(d[start:start + n])
        start, depth = self.i, 0
        while self.i < len(d):
            ch = d[self.i]
            if ch == 0x5B:
                depth += 1
            elif ch == 0x5D:
                depth -= 1
            elif depth == 0 and ch in (0x20, 0x28, 0x29):
                break
            self.i += 1
        atom = d[start:self.i].decode("utf-8", "replace")
        return None if atom == "NIL" else atom


def parse(data):
    return _Parser(data).tokens()


class Response:
    def __init__(self, tag, status, code, text, untagged):
        self.tag, self.status, self.code, self.text, self.untagged = tag, status, code, text, untagged

    def each(self, kind):
        """Untagged responses of KIND ('LIST', 'FETCH', 'EXISTS', ...), as raw bytes."""
        return [u for k, u in self.untagged if k == kind]


_STATUS_RE = re.compile(rb"^(OK|NO|BAD|BYE|PREAUTH)(?: \[([^\]]*)\])?\s?(.*)$", re.S)
_LITERAL_END = re.compile(rb"\{(\d+)\}$")


class Imap:
    def __init__(self, host, port, timeout=60, source_ip=None, sock=None):
        """Connects to host:port, or speaks over `sock` (a connected socket, e.g. one end of a
        socketpair whose other end is a server's stdin/stdout: pipe_session)."""
        self.proc = None
        if sock is not None:
            self.sock = sock
            self.sock.settimeout(timeout)
        else:
            try:
                self.sock = socket.create_connection((host, port), timeout=timeout,
                                                     source_address=(source_ip, 0) if source_ip else None)
            except OSError as e:
                raise ImapError(f"cannot connect to IMAP {host}:{port}: {e.strerror or e}")
        self.rf = self.sock.makefile("rb")
        self.n = 0
        self.pending = {}
        self.bye = None
        greeting = self._read_response()
        m = _STATUS_RE.match(greeting[2:]) if greeting.startswith(b"* ") else None
        if not m or m.group(1) not in (b"OK", b"PREAUTH"):
            raise ImapError(f"unexpected IMAP greeting: {greeting[:200]!r}")
        self.capabilities = set()
        self._caps_from_code(m.group(2))

    def _caps_from_code(self, code):
        if code and code.upper().startswith(b"CAPABILITY "):
            self.capabilities = set(code.decode().upper().split()[1:])

    # --- wire -------------------------------------------------------------------------------

    def _read_line(self):
        line = self.rf.readline(1 << 20)
        if not line:
            why = f" (BYE {self.bye})" if self.bye else ""
            raise ImapError(f"IMAP server closed the connection{why}")
        return line.rstrip(b"\r\n")

    def _read_response(self):
        """One complete response line with its literals inlined as {N}\\r\\n<data>."""
        buf = bytearray(self._read_line())
        while True:
            m = _LITERAL_END.search(buf)
            if not m:
                return bytes(buf)
            n = int(m.group(1))
            data = self.rf.read(n)
            if len(data) != n:
                raise ImapError("IMAP server closed the connection inside a literal")
            buf += b"\r\n" + data + self._read_line()

    def send(self, *parts):
        """Send a command without waiting; returns its tag. Parts are str/bytes (sent as is)
        or Literal (LITERAL+ when the server has it, else a synchronizing literal)."""
        self.n += 1
        tag = f"m{self.n}"
        out = bytearray(tag.encode())
        nonsync = "LITERAL+" in self.capabilities
        for p in parts:
            out += b" "
            if isinstance(p, Literal):
                if nonsync:
                    out += b"{%d+}\r\n" % len(p.data) + p.data
                else:
                    out += b"{%d}\r\n" % len(p.data)
                    self.sock.sendall(out)
                    out = bytearray()
                    self._await_continuation(tag)
                    out += p.data
            else:
                out += p.encode() if isinstance(p, str) else p
        out += b"\r\n"
        self.sock.sendall(out)
        self.pending[tag] = parts[0] if isinstance(parts[0], str) else "command"
        return tag

    def _await_continuation(self, tag):
        while True:
            line = self._read_response()
            if line.startswith(b"+"):
                return
            if line.startswith(tag.encode() + b" "):
                raise ImapError(f"literal refused: {line.decode('utf-8', 'replace')}")

    def wait(self, tag, check=True):
        """Read until TAG completes; returns its Response (untagged ones seen meanwhile too)."""
        untagged = []
        btag = tag.encode() + b" "
        while True:
            line = self._read_response()
            if line.startswith(b"* "):
                body = line[2:]
                first, _, rest = body.partition(b" ")
                if first.isdigit():  # "* 3 EXISTS", "* 5 FETCH (...)"
                    kind, _, _ = rest.partition(b" ")
                    untagged.append((kind.decode().upper(), body))
                else:
                    untagged.append((first.decode().upper(), rest))
                    if first.upper() == b"BYE":
                        self.bye = rest.decode("utf-8", "replace")
                continue
            if line.startswith(btag):
                m = _STATUS_RE.match(line[len(btag):])
                status = m.group(1).decode() if m else "BAD"
                code = (m.group(2) or b"").decode("utf-8", "replace") if m else ""
                text = (m.group(3) if m else line).decode("utf-8", "replace")
                cmd = self.pending.pop(tag, "command")
                if check and status != "OK":
                    raise ImapNo(cmd, status, code.split(" ")[0] if code else "", text)
                return Response(tag, status, code, text, untagged)
            if line.startswith(b"+"):
                continue
            # another pipelined command's completion: ignore it here (caller waits for it)
            tag2 = line.split(b" ", 1)[0].decode("utf-8", "replace")
            if tag2 in self.pending:
                self.pending.pop(tag2)
                m = _STATUS_RE.match(line[len(tag2) + 1:])
                if m and m.group(1) != b"OK":
                    raise ImapError(f"pipelined {tag2} failed: {line.decode('utf-8', 'replace')}")

    def command(self, *parts, check=True):
        return self.wait(self.send(*parts), check=check)

    # --- conveniences -----------------------------------------------------------------------

    def login(self, user, password):
        r = self.command("LOGIN", quote(user), quote(password))
        self._caps_from_code(r.code.encode())
        if not self.capabilities or "IMAP4REV1" not in self.capabilities:
            caps = self.command("CAPABILITY").each("CAPABILITY")
            if caps:
                self.capabilities = set(caps[0].decode().upper().split())
        return r

    def id(self):
        """Server ID fields (Dovecot's imap_id_send), lower-cased keys."""
        r = self.command("ID", "NIL")
        for raw in r.each("ID"):
            toks = parse(raw)
            if toks and isinstance(toks[0], list):
                it = toks[0]
                return {str(it[i]).lower(): it[i + 1] for i in range(0, len(it) - 1, 2)}
        return {}

    def mlab_store(self):
        """The lab store this session landed on: a Dovecot store names itself in IMAP ID
        (x-mlab-store), a Courier store in a capability X-MLAB-STORE=<name> (courier_imaplogin.py
        adds it; Courier's ID has no room for it)."""
        caps = self.command("CAPABILITY").each("CAPABILITY")
        for cap in caps[0].decode().split() if caps else []:
            if cap.upper().startswith("X-MLAB-STORE="):
                return cap.split("=", 1)[1]
        return self.id().get("x-mlab-store")

    def list(self, cmd="LIST"):
        """[(name (decoded), raw name, flags, delimiter)] from LIST/LSUB "" "*"."""
        out = []
        for raw in self.command(cmd, '""', '"*"').each(cmd):
            toks = parse(raw)
            flags, delim, name = toks[0], toks[1], toks[2]
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
            out.append((mutf7_decode(name), name, [f for f in flags], delim))
        return out

    def examine(self, raw_name, readonly=True):
        """-> {'exists', 'uidvalidity', 'uidnext'} of the mailbox, now selected."""
        r = self.command("EXAMINE" if readonly else "SELECT", quote(raw_name))
        info = {"exists": 0, "uidvalidity": None, "uidnext": None}
        for kind, raw in r.untagged:
            if kind == "EXISTS":
                info["exists"] = int(raw.split(b" ")[0])
            elif kind == "OK":
                m = re.match(rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]", raw)
                if m:
                    info[m.group(1).decode().lower()] = int(m.group(2))
        return info

    def fetch(self, uid_set, items):
        """UID FETCH -> [dict item -> value] (keys upper-case, e.g. 'UID', 'FLAGS', 'BODY[...]')."""
        r = self.command("UID", "FETCH", uid_set, items)
        out = []
        for raw in r.each("FETCH"):
            toks = parse(raw)  # ['5', 'FETCH', [k, v, k, v ...]]
            kv = toks[2]
            out.append({str(kv[i]).upper(): kv[i + 1] for i in range(0, len(kv) - 1, 2)})
        return out

    def logout(self):
        try:
            self.command("LOGOUT", check=False)
        except (ImapError, OSError):
            pass
        self.close()

    def close(self):
        try:
            self.rf.close()
            self.sock.close()
        except OSError:
            pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pipe_session(argv, env=None, cwd=None, timeout=60):
    """An IMAP session with a server that speaks on its stdin/stdout (Courier's `imapd MAILDIR`
    answers pre-authenticated): the server runs as a child on one end of a socketpair."""
    mine, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(argv, stdin=theirs, stdout=theirs, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    except OSError as e:
        mine.close()
        raise ImapError(f"cannot start {argv[0]}: {e.strerror or e}")
    finally:
        theirs.close()
    try:
        imap = Imap(None, None, timeout=timeout, sock=mine)
    except ImapError:
        proc.kill()
        proc.wait()
        raise
    imap.proc = proc
    return imap
