#!/usr/bin/python3
"""nginx mail auth_http responder of the lab.

For every login nginx asks GET /auth with Auth-User/Auth-Pass (URL-escaped). We look the login up
by mail or uid (bound as the reader), check the password with an ldapwhoami bind as that user
(password on stdin, never on argv), then answer:
  active (or no status)  -> Auth-Status: OK, Auth-Server 127.0.0.1, Auth-Port = IMAP port of mailHost
  disabled               -> [CONTACTADMIN] Account disabled (no Auth-Wait: nginx closes)
  frozen / anything else -> [UNAVAILABLE] Account frozen, try again later, Auth-Wait 3
  frozen;until=<UTC>      -> as frozen until that time, then as active (the freeze expired)
  bad login/password     -> [AUTHENTICATIONFAILED] Invalid login or password, Auth-Wait 3
  slapd unreachable      -> [UNAVAILABLE] Temporary authentication failure, Auth-Wait 3
Every decision is one line in DIR/logs/auth_http.out. Ports come from DIR/lab.env."""

import argparse
import http.server
import os
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labcommon  # noqa: E402

PROG = "auth_http.py"
WAIT_S = "3"  # nginx delays the NO by this much and keeps the connection for a retry
FAILED = "[AUTHENTICATIONFAILED] Invalid login or password"
FROZEN = "[UNAVAILABLE] Account frozen, try again later"
DISABLED = "[CONTACTADMIN] Account disabled"
TEMPFAIL = "[UNAVAILABLE] Temporary authentication failure, try again later"


class Responder:
    def __init__(self, lab_dir):
        self.env = labcommon.load_env(lab_dir)
        self.log_path = os.path.join(lab_dir, "logs", "auth_http.out")
        self.log_lock = threading.Lock()

    def log(self, **fields):
        line = time.strftime("%Y-%m-%dT%H:%M:%S") + " " + " ".join(f"{k}={v}" for k, v in fields.items())
        with self.log_lock, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def password_ok(self, dn, password):
        r = subprocess.run(["ldapwhoami", "-x", "-o", "nettimeout=5", "-H", self.env["LDAP_URI"],
                            "-D", dn, "-y", "/dev/stdin"],
                           input=password, capture_output=True, text=True, timeout=10)
        if r.returncode == 49:  # invalidCredentials
            return False
        if r.returncode != 0:
            raise labcommon.LdapError(r.returncode, " ".join(r.stderr.split()))
        return True

    def decide(self, login, password, protocol):
        """-> (headers dict, log fields)"""
        if not login or not password:
            return {"Auth-Status": FAILED, "Auth-Wait": WAIT_S}, {"decision": "failed", "why": "empty-login"}
        try:
            entry = labcommon.find_user(self.env, login)
            if entry is None:
                return {"Auth-Status": FAILED, "Auth-Wait": WAIT_S}, {"decision": "failed", "why": "unknown-user"}
            if not self.password_ok(entry["dn"], password):
                return {"Auth-Status": FAILED, "Auth-Wait": WAIT_S}, {"decision": "failed", "why": "bad-password"}
        except (labcommon.LabError, subprocess.TimeoutExpired) as e:
            return {"Auth-Status": TEMPFAIL, "Auth-Wait": WAIT_S}, {"decision": "tempfail", "why": repr(str(e))}
        raw = labcommon.first(entry, "mailAccountStatus") or "active"
        status = labcommon.effective_status(raw)
        host = labcommon.first(entry, "mailHost", "")
        fields = {"dn": entry["dn"], "status": status, "raw_status": raw, "mailhost": host}
        if status == "disabled":
            return {"Auth-Status": DISABLED}, {**fields, "decision": "disabled"}
        if status != "active":
            return {"Auth-Status": FROZEN, "Auth-Wait": WAIT_S}, {**fields, "decision": "frozen"}
        port_key = f"{host.upper()}_{protocol.upper()}_PORT"
        if host not in labcommon.stores(self.env) or port_key not in self.env:
            return ({"Auth-Status": TEMPFAIL, "Auth-Wait": WAIT_S},
                    {**fields, "decision": "tempfail", "why": "unknown-mailhost"})
        port = self.env[port_key]
        return ({"Auth-Status": "OK", "Auth-Server": "127.0.0.1", "Auth-Port": port},
                {**fields, "decision": "ok", "store": host, "port": port})


class Handler(http.server.BaseHTTPRequestHandler):
    responder = None  # set in main()
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        h = self.headers
        login = urllib.parse.unquote(h.get("Auth-User", ""))
        password = urllib.parse.unquote(h.get("Auth-Pass", ""))
        protocol = h.get("Auth-Protocol", "imap")
        client = h.get("Client-IP", "-")
        attempt = h.get("Auth-Login-Attempt", "1")
        headers, fields = self.responder.decide(login, password, protocol)
        self.responder.log(user=login or "-", client=client, attempt=attempt, protocol=protocol, **fields)
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, fmt, *args):  # decisions are logged by do_GET; keep stderr quiet
        pass


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", required=True, help="lab directory (reads DIR/lab.env)")
    a = ap.parse_args()
    try:
        Handler.responder = Responder(a.lab)
        port = int(Handler.responder.env["AUTH_HTTP_PORT"])
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except (labcommon.LabError, OSError, KeyError) as e:
        labcommon.die(PROG, f"cannot start: {e}")
    server.daemon_threads = True
    print(f"{PROG}: listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
