"""Helpers shared by the lab scripts: reading lab.env, talking to slapd through
ldap-utils (no python-ldap), one-line errors. Python stdlib only."""

import base64
import hashlib
import json
import os
import calendar
import secrets
import smtplib
import subprocess
import sys
import time
from email.utils import formatdate


class LabError(Exception):
    """A problem worth one clear line on stderr (missing lab.env, unknown user...)."""


class LdapError(LabError):
    def __init__(self, rc, message):
        super().__init__(message)
        self.rc = rc


# ldapsearch/ldapwhoami exit with 255 (LDAP_SERVER_DOWN as -1) when slapd is unreachable.
LDAP_RC_SERVER_DOWN = 255


def die(prog, message, code=1):
    print(f"{prog}: {message}", file=sys.stderr)
    sys.exit(code)


def print_json(obj):
    """JSON on stdout; a reader that went away (| head) is not an error."""
    try:
        json.dump(obj, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def load_env(lab_dir):
    """Parse DIR/lab.env (KEY=VALUE; a value with spaces is double-quoted)."""
    path = os.path.join(lab_dir, "lab.env")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise LabError(f"no lab.env in {lab_dir} (is the lab started? run: tests/lab/lab.sh start {lab_dir})")
    env = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise LabError(f"{path}: malformed line '{line}'")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        env[key] = value
    return env


def stores(env):
    return env["STORES"].split()


def courier_stores(env):
    return env.get("COURIER_STORES", "").split()


def all_stores(env):
    """STORES, the director's backends over one shared mail root (SHARED_STORES) and the Courier
    stores (COURIER_STORES: mail roots only, read by Courier's imapd on a pipe)."""
    return stores(env) + env.get("SHARED_STORES", "").split() + courier_stores(env)


def store_port(env, store, kind):
    """kind: IMAP_PORT, LMTP_PORT, DOVEADM_PORT ..."""
    key = f"{store.upper()}_{kind}"
    if store not in all_stores(env) or key not in env:
        raise LabError(f"unknown store '{store}' (this lab has: {' '.join(all_stores(env))})")
    return int(env[key])


ROUTERS = ("nginx", "perdition", "dproxy", "director")  # lab.env has <ROUTER>_IMAP_PORT for each


def router_or_store_port(env, via):
    """IMAP port of a router (nginx, perdition, dproxy, director) or of a store (store1, shared1, ...)."""
    if via in ROUTERS:
        return int(env[f"{via.upper()}_IMAP_PORT"])
    return store_port(env, via, "IMAP_PORT")


def ssha(password, salt=None):
    """{SSHA} as slapd checks it: base64(sha1(password + salt) + salt)."""
    salt = os.urandom(8) if salt is None else salt
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def filter_escape(value):
    """RFC 4515 escaping for a value inside an LDAP filter."""
    out = []
    for ch in value:
        out.append("\\%02x" % ord(ch) if ch in "\\*()\0" else ch)
    return "".join(out)


def parse_ldif(text):
    """ldapsearch -LLL output -> [{'dn': str, attr_lowercase: [values]}]."""
    entries, cur = [], None
    for raw in text.replace("\n ", "").split("\n"):  # unfold first (RFC 2849)
        if not raw.strip():
            if cur is not None:
                entries.append(cur)
            cur = None
            continue
        if raw.startswith("#"):
            continue
        name, _, value = raw.partition(":")
        if value.startswith(":"):
            value = base64.b64decode(value[1:].strip()).decode("utf-8", "replace")
        elif value.startswith(" "):
            value = value[1:]
        cur = {} if cur is None else cur
        if name.lower() == "dn":
            cur["dn"] = value
        else:
            cur.setdefault(name.lower(), []).append(value)
    if cur is not None:
        entries.append(cur)
    return entries


def _bind_args(env, bind):
    if bind == "admin":
        return ["-D", env["LDAP_ADMIN_DN"], "-y", env["LDAP_ADMIN_PW_FILE"]]
    if bind == "reader":
        return ["-D", env["LDAP_READER_DN"], "-y", env["LDAP_READER_PW_FILE"]]
    return []  # anonymous


def ldapsearch(env, flt, attrs, bind="reader", base=None, timeout=10):
    cmd = ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=5",
           "-H", env["LDAP_URI"], *_bind_args(env, bind),
           "-b", base or env["LDAP_PEOPLE"], flt, *attrs]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LdapError(LDAP_RC_SERVER_DOWN, f"ldapsearch {flt}: no answer from {env['LDAP_URI']} in {timeout}s")
    if r.returncode == 32:  # noSuchObject: the base is missing
        return []
    if r.returncode != 0:
        msg = " ".join(r.stderr.split()) or f"exit {r.returncode}"
        raise LdapError(r.returncode, f"ldapsearch {flt} on {env['LDAP_URI']}: {msg}")
    return parse_ldif(r.stdout)


USER_ATTRS = ["mail", "uid", "mailHost", "mailAccountStatus", "mailMessageStore"]


def find_user(env, login, attrs=USER_ATTRS, bind="reader"):
    """The mlabMailAccount whose mail or uid is LOGIN; None if there is none."""
    v = filter_escape(login)
    found = ldapsearch(env, f"(&(objectClass=mlabMailAccount)(|(mail={v})(uid={v})))", list(attrs), bind=bind)
    if len(found) > 1:
        raise LabError(f"login '{login}' matches {len(found)} LDAP entries")
    return found[0] if found else None


def first(entry, attr, default=None):
    values = entry.get(attr.lower())
    return values[0] if values else default


def effective_status(value, now=None):
    """mailAccountStatus as a router reads it (lower case). mailshard writes 'frozen', or
    'frozen;' followed by fields: 'move=42.9f3a1c2b' (the move that froze it) and
    'until=20261205T013000Z' (UTC), as in 'frozen;move=42.9f3a1c2b;until=20261205T013000Z'.
    Every 'frozen;...' value is 'frozen', except that one whose deadline has passed is 'active';
    a deadline that does not parse, or a field mailshard does not write, stays 'frozen'
    (never let a user in by mistake during a move)."""
    v = (value or "active").lower()
    if not v.startswith("frozen;"):
        return v
    until = None
    for field in v.split(";")[1:]:
        key, eq, val = field.partition("=")
        if key == "move" and eq:
            continue
        if key != "until" or not eq:
            return "frozen"
        try:
            until = calendar.timegm(time.strptime(val.upper(), "%Y%m%dT%H%M%SZ"))
        except ValueError:
            return "frozen"
    if until is None:
        return "frozen"
    return "active" if (time.time() if now is None else now) >= until else "frozen"


def user_home(env, store, entry):
    rel = first(entry, "mailMessageStore")
    if not rel or rel.startswith("/") or ".." in rel.split("/"):
        raise LabError(f"{entry['dn']}: bad mailMessageStore '{rel}'")
    return os.path.join(env[f"{store.upper()}_MAIL_ROOT"], rel)


# Courier-IMAP's imapd on a pipe, as its login program would start it after authentication
# (the settings of Debian's /etc/courier/imapd that matter; no trash purge, no shared index).
COURIER_ENV = {"IMAP_CAPABILITY": "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE IDLE", "IMAP_KEYWORDS": "1",
               "IMAP_ACL": "1", "IMAP_USELOCKS": "1", "IMAP_EMPTYTRASH": "", "IMAP_MOVE_EXPUNGE_TO_TRASH": "0",
               "IMAP_UMASK": "022", "IMAP_IDLE_TIMEOUT": "60", "PATH": "/usr/bin:/bin"}


def courier_session(env, store, login, timeout=60):
    """A pre-authenticated IMAP session of LOGIN with Courier's imapd on the Maildir of LOGIN's home
    on Courier store STORE (from LDAP's mailMessageStore), run as the mail owner with
    AUTHENTICATED=LOGIN, as Courier's imaplogin leaves it (the kick command finds it by that)."""
    from mlab_imap import pipe_session  # noqa: E402 (mlab_imap imports nothing from here)
    imapd = env.get("COURIER_IMAPD", "")
    if not imapd or not os.access(imapd, os.X_OK):
        raise LabError(f"Courier's imapd '{imapd}' is missing: run tests/lab/install-deps.sh as root")
    entry = find_user(env, login)
    if entry is None:
        raise LabError(f"no user '{login}' in LDAP")
    home = user_home(env, store, entry)
    if not os.path.isdir(os.path.join(home, "Maildir")):
        raise LabError(f"{login} has no Maildir on {store} ({home}/Maildir)")
    child_env = dict(COURIER_ENV, AUTHENTICATED=login, HOME=home, MAILDIR="Maildir")
    argv = ["setpriv", f"--reuid={env['MAIL_UID']}", f"--regid={env['MAIL_GID']}", "--clear-groups", imapd, "Maildir"]
    return pipe_session(argv, env=child_env, cwd=home, timeout=timeout)


FILLER = "The quick brown fox jumps over the lazy dog. 0123456789 mlab filler text.\r\n"


def build_message(from_header, rcpt, tag, seq, size, subject, body_line, extra_headers=""):
    """A test message padded to about `size` bytes -> (Message-ID, bytes). Its Message-ID is
    <mlab.TAG.SEQ.RAND@example.org>; X-Mlab-Seq and X-Mlab-Tag carry SEQ and TAG."""
    msgid = f"<mlab.{tag}.{seq}.{secrets.token_hex(4)}@example.org>"
    head = (f"From: {from_header}\r\n"
            f"To: <{rcpt}>\r\n"
            f"Subject: {subject}\r\n"
            f"Date: {formatdate(localtime=True)}\r\n"
            f"Message-ID: {msgid}\r\n"
            f"X-Mlab-Seq: {seq}\r\n"
            f"X-Mlab-Tag: {tag}\r\n"
            f"{extra_headers}"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n")
    body = body_line
    while len(head) + len(body) < size:
        body += FILLER
    return msgid, (head + body).encode()


def send_with_retries(connect, close, sender, rcpt, data, what, retries, pause_s):
    """Sends one message on connect() (an smtplib SMTP/LMTP session), retrying 4xx replies and
    lost sessions on a fresh one (close() drops it) up to `retries` times, `pause_s` apart.
    -> the number of retries needed. Raises LabError on a 5xx or too many 4xx ("WHAT refused")."""
    last = None
    for attempt in range(retries + 1):
        try:
            connect().sendmail(sender, [rcpt], data)
            return attempt
        except smtplib.SMTPRecipientsRefused as e:
            code, text = next(iter(e.recipients.values()))
        except smtplib.SMTPResponseException as e:
            code, text = e.smtp_code, e.smtp_error
        except (smtplib.SMTPServerDisconnected, OSError) as e:
            code, text = 421, str(e).encode()
        last = f"{code} {text.decode('utf-8', 'replace') if isinstance(text, bytes) else text}"
        close()  # start the next attempt on a fresh session
        if not 400 <= code < 500:
            raise LabError(f"{what} refused {rcpt}: {last}")
        time.sleep(pause_s)
    raise LabError(f"{what} kept answering 4xx for {rcpt}: {last}")
