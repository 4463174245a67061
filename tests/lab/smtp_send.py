#!/usr/bin/python3
"""Send test mail to a lab user by SMTP through the lab's Postfix (127.0.0.1:SMTP_PORT).

Unlike deliver.py, which picks the store itself, this hands every message to Postfix and lets
its LDAP transport_maps route it (and defer it while the user is frozen). One SMTP session is
kept open for the whole run (reopened after an error). A 4xx is retried (bounded); a 5xx is a
failure: nothing a move does may make Postfix refuse a known user. Each message carries
  Message-ID: <mlab.TAG.SEQ.RAND@example.org>, X-Mlab-Seq: SEQ, X-Mlab-Tag: TAG
Prints a JSON summary on stdout: accepted count, tempfail retries, and every message with its
Message-ID and the epoch time Postfix accepted it ("accepted_at")."""

import argparse
import json
import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labcommon  # noqa: E402

PROG = "smtp_send.py"
TEMP_RETRIES = 20        # 4xx retries per message ...
TEMP_PAUSE_S = 0.5       # ... this far apart: ~10 s of tempfail before giving up
SMTP_TIMEOUT_S = 30


def build_message(sender, rcpt, tag, seq, size):
    return labcommon.build_message(f"<{sender}>", rcpt, tag, seq, size, f"mlab smtp {tag} message {seq}",
                                   f"Test message {seq} of run {tag}, sent by SMTP through the lab's Postfix.\r\n")


class Sender:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def close(self):
        if self.conn is not None:
            try:
                self.conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
        self.conn = None

    def _connect(self):
        if self.conn is None:
            self.conn = smtplib.SMTP("127.0.0.1", self.port, timeout=SMTP_TIMEOUT_S)
            self.conn.ehlo("mlab-smtp-send")
        return self.conn

    def send(self, sender, rcpt, data):
        """-> number of 4xx retries needed. Raises LabError on a 5xx or too many 4xx."""
        return labcommon.send_with_retries(self._connect, self.close, sender, rcpt, data, "Postfix", TEMP_RETRIES,
                                           TEMP_PAUSE_S)


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", required=True, help="lab directory")
    ap.add_argument("--user", required=True, help="recipient address (user@example.org)")
    ap.add_argument("--count", type=int, required=True, metavar="N")
    ap.add_argument("--tag", default="s", help="goes into Message-ID and headers (default s)")
    ap.add_argument("--sender", default="mlab-smtp@example.net", help="envelope and From: address")
    ap.add_argument("--size", type=int, default=0, metavar="BYTES", help="pad each message to about BYTES")
    ap.add_argument("--interval", type=float, default=0, metavar="SEC", help="pause between messages")
    a = ap.parse_args()
    if a.count < 0:
        ap.error("--count must be >= 0")
    if not all(c.isalnum() or c in "-_" for c in a.tag):
        ap.error("--tag may contain only letters, digits, - and _")

    t0 = time.monotonic()
    messages, retries = [], 0
    s = None
    try:
        env = labcommon.load_env(a.lab)
        if "SMTP_PORT" not in env:
            raise labcommon.LabError("the lab has no SMTP_PORT (started by an older lab.sh?)")
        s = Sender(int(env["SMTP_PORT"]))
        for seq in range(1, a.count + 1):
            if seq > 1 and a.interval > 0:
                time.sleep(a.interval)
            msgid, data = build_message(a.sender, a.user, a.tag, seq, a.size)
            retries += s.send(a.sender, a.user, data)
            messages.append({"seq": seq, "message_id": msgid, "accepted_at": round(time.time(), 3)})
    except labcommon.LabError as e:
        print(f"{PROG}: {e} (after {len(messages)} of {a.count} accepted)", file=sys.stderr)
        if messages:
            print(json.dumps({"user": a.user, "accepted": len(messages), "messages": messages}))
        return 1
    finally:
        if s is not None:
            s.close()
    labcommon.print_json({"user": a.user, "tag": a.tag, "accepted": len(messages), "tempfail_retries": retries,
                          "elapsed_s": round(time.monotonic() - t0, 3), "messages": messages})
    return 0


if __name__ == "__main__":
    sys.exit(main())
