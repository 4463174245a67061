#!/usr/bin/python3
"""The lab's stand-in for Courier's couriertcpd + imaplogin + authldap in front of one Courier store.

Listens on 127.0.0.1:PORT and, for every connection (a forked child):
  * greets (`* OK ...`) and answers CAPABILITY, NOOP and LOGOUT before login;
  * takes LOGIN with atoms, quoted strings or literals ({N} and {N+}: nginx's mail proxy sends
    `TAG LOGIN {N}`, waits for "+", sends the login, then the password the same way);
  * finds the login (mail or uid) in the lab's slapd as the reader and checks the password with
    a simple bind as the user (ldapwhoami, password on stdin) -- what Courier's authldap does
    with LDAP_AUTHBIND; any LDAP user may log in, whatever mailHost says (like the Dovecot stores:
    routing is the proxies' job, and a move target must accept its user before the flip);
  * then execs Courier-IMAP's own imapd on the socket as the mail owner, in the user's home
    (the store's mail root + mailMessageStore), with AUTHENTICATED=<login> and IMAPLOGINTAG=<tag>
    as imaplogin leaves them: imapd itself answers `TAG OK LOGIN Ok.` and serves the session, and
    examples/courier/kick-courier-user finds it like any Courier session.
A lab-only capability X-MLAB-STORE=<store> tells a client which store it landed on (the Dovecot
stores say it in IMAP ID). A user with no Maildir on this store is refused with [UNAVAILABLE]
(Courier's imapd would fail its chdir after the login instead).

Why not the real couriertcpd/imaplogin/authdaemond: authdaemond's socket and authldaprc have
compiled-in paths under /run and /etc, so two labs on one machine would share them, and
couriertcpd comes with courier-base, which brings a system authdaemond. See tests/lab/README.md.

SIGTERM ends the listener and every session it started (they share its process group)."""

import argparse
import os
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labcommon  # noqa: E402

PROG = "courier_imaplogin.py"
PRELOGIN_TIMEOUT_S = 60       # a client that says nothing before login is dropped
MAX_LINE = 8192               # longest command line before login
MAX_LITERAL = 1024            # longest login or password
LDAP_TIMEOUT_S = 10


class Refused(Exception):
    def __init__(self, reply):
        super().__init__(reply)
        self.reply = reply


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def _fill(self):
        chunk = self.sock.recv(4096)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf and b"\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                raise Refused("* BAD line too long")
            self._fill()
        i = self.buf.find(b"\n")
        out, self.buf = self.buf[:i], self.buf[i + 1:]
        return out.rstrip(b"\r")

    def exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def parse_args(conn, rest):
    """The arguments of a command line after the command name: atoms, "quoted" strings and
    literals (sends "+" for a synchronising one and reads the next line after it)."""
    args = []
    while True:
        rest = rest.lstrip(b" ")
        if not rest:
            return args
        if rest[:1] == b'"':
            out, i = bytearray(), 1
            while i < len(rest) and rest[i:i + 1] != b'"':
                if rest[i:i + 1] == b"\\":
                    i += 1
                out += rest[i:i + 1]
                i += 1
            if i >= len(rest):
                raise Refused("BAD unterminated quoted string")
            args.append(bytes(out))
            rest = rest[i + 1:]
        elif rest[:1] == b"{" and rest.endswith(b"}"):
            spec = rest[1:-1]
            sync = not spec.endswith(b"+")
            n = spec.rstrip(b"+")
            if not n.isdigit() or int(n) > MAX_LITERAL:
                raise Refused("BAD bad literal")
            if sync:
                conn.send("+ OK")
            args.append(conn.exactly(int(n)))
            rest = conn.line()
        else:
            atom, _, rest = rest.partition(b" ")
            args.append(atom)


def check_login(env, login, password):
    """-> the user's LDAP entry, or raises Refused with the reply's tail."""
    try:
        entry = labcommon.find_user(env, login, attrs=["mail", "mailMessageStore"])
    except labcommon.LdapError as e:
        raise Refused(f"NO [UNAVAILABLE] directory unavailable ({e})")
    if entry is None:
        raise Refused("NO [AUTHENTICATIONFAILED] Invalid login or password")
    try:
        r = subprocess.run(["ldapwhoami", "-x", "-o", "nettimeout=5", "-H", env["LDAP_URI"], "-D", entry["dn"],
                            "-y", "/dev/stdin"], input=password, capture_output=True, timeout=LDAP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise Refused("NO [UNAVAILABLE] directory unavailable (bind timed out)")
    if r.returncode == 49:  # invalidCredentials
        raise Refused("NO [AUTHENTICATIONFAILED] Invalid login or password")
    if r.returncode != 0:
        raise Refused(f"NO [UNAVAILABLE] directory unavailable (ldapwhoami exit {r.returncode})")
    return entry


def session(sock, peer, env, store, imapd, log):
    conn = Conn(sock)
    caps = "IMAP4rev1 LITERAL+"  # LOGIN only (what nginx sends)
    conn.send(f"* OK [CAPABILITY {caps}] Courier-IMAP of the mlab store {store} ready.")
    while True:
        raw = conn.line()
        login = "-"
        tag, _, rest = raw.partition(b" ")
        cmd, _, rest = rest.partition(b" ")
        t = tag.decode("ascii", "replace")
        verb = cmd.decode("ascii", "replace").upper()
        try:
            if not tag or not cmd:
                raise Refused("BAD empty command")
            if verb == "CAPABILITY":
                conn.send(f"* CAPABILITY {caps}")
                conn.send(f"{t} OK CAPABILITY completed")
            elif verb == "NOOP":
                conn.send(f"{t} OK NOOP completed")
            elif verb == "LOGOUT":
                conn.send("* BYE Courier-IMAP server shutting down")
                conn.send(f"{t} OK LOGOUT completed")
                return
            elif verb == "LOGIN":
                args = parse_args(conn, rest)
                if len(args) != 2:
                    raise Refused("BAD LOGIN takes a user and a password")
                login = args[0].decode("utf-8", "replace")
                entry = check_login(env, login, args[1])
                home = labcommon.user_home(env, store, entry)
                if not os.path.isdir(os.path.join(home, "Maildir")):
                    raise Refused(f"NO [UNAVAILABLE] no mailbox for {login} on {store}")
                log(f"user={login} client={peer[0]} decision=ok home={home}")
                start_imapd(sock, peer, env, store, imapd, login, home, t)  # does not return
            else:
                raise Refused(f"BAD {verb or '?'} not allowed before LOGIN")
        except Refused as e:
            if verb == "LOGIN":
                log(f"user={login} client={peer[0]} decision=refused reply=\"{e.reply}\"")
            conn.send(e.reply if e.reply.startswith("* ") else f"{t} {e.reply}")
        except labcommon.LabError as e:
            conn.send(f"{t} NO [UNAVAILABLE] {e}")


def start_imapd(sock, peer, env, store, imapd, login, home, tag):
    child_env = dict(labcommon.COURIER_ENV, AUTHENTICATED=login, HOME=home, MAILDIR="Maildir", IMAPLOGINTAG=tag,
                     TCPREMOTEIP=peer[0], TCPREMOTEPORT=str(peer[1]))
    child_env["IMAP_CAPABILITY"] += f" X-MLAB-STORE={store}"
    sock.setblocking(True)  # the timeout made the socket O_NONBLOCK, and imapd inherits the flag
    fd = sock.fileno()
    os.dup2(fd, 0)
    os.dup2(fd, 1)
    os.chdir(home)
    os.setgroups([])
    os.setgid(int(env["MAIL_GID"]))
    os.setuid(int(env["MAIL_UID"]))
    os.execve(imapd, [imapd, "Maildir"], child_env)


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", required=True, help="lab directory")
    ap.add_argument("--store", required=True, help="the Courier store (courier1, ...)")
    ap.add_argument("--port", type=int, help="port on 127.0.0.1 (default: lab.env's <STORE>_IMAP_PORT)")
    a = ap.parse_args()
    try:
        env = labcommon.load_env(a.lab)
        if a.store not in labcommon.courier_stores(env):
            raise labcommon.LabError(f"'{a.store}' is not a Courier store of this lab ({env.get('COURIER_STORES')})")
        port = a.port or labcommon.store_port(env, a.store, "IMAP_PORT")
        imapd = env.get("COURIER_IMAPD", "")
        if not os.access(imapd, os.X_OK):
            raise labcommon.LabError(f"Courier's imapd '{imapd}' is missing: run tests/lab/install-deps.sh as root")
    except labcommon.LabError as e:
        labcommon.die(PROG, str(e))

    def log(msg):
        print(f"{PROG} {a.store}: {msg}", file=sys.stderr, flush=True)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)

    def stop(signum, frame):
        # The sessions (imapd after exec) are in this process group: end them with the listener.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.killpg(os.getpgrp(), signal.SIGTERM)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    log(f"listening on 127.0.0.1:{port}")
    while True:
        try:
            sock, peer = listener.accept()
        except InterruptedError:
            continue
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            listener.close()
            sock.settimeout(PRELOGIN_TIMEOUT_S)
            try:
                session(sock, peer, env, a.store, imapd, log)
            except (EOFError, OSError, Refused):
                pass
            os._exit(0)
        sock.close()


if __name__ == "__main__":
    main()
