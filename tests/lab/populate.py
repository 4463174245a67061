#!/usr/bin/python3
"""Add lab mail users in one ldapadd stream (called by `lab.sh populate`).

Users are uid=userNNNNN,ou=people,dc=example,dc=org with mail userNNNNN@DOMAIN, password
"secret" ({SSHA}, one hash shared by all: computing a salted hash per user is wasted time in a
lab), mailHost round-robin over --stores in the order given (the first new user goes to the
first store), mailMessageStore DOMAIN/userNNNNN and mailAccountStatus active. Users that already
exist are left alone. Also makes DIR/storeN/mail/DOMAIN (owned by dovecot) on every store, so a
mailbox can be received by any store. Prints the number of users added."""

import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labcommon  # noqa: E402

PROG = "lab.sh populate"


def build_ldif(env, first, count, stores, domain, password_hash):
    people = env["LDAP_PEOPLE"]
    parts = []
    for i in range(count):
        n = first + i
        uid = f"user{n:05d}"
        parts.append(
            f"dn: uid={uid},{people}\n"
            "objectClass: inetOrgPerson\n"
            "objectClass: inetLocalMailRecipient\n"
            "objectClass: mlabMailAccount\n"
            f"uid: {uid}\ncn: Lab User {n:05d}\nsn: User{n:05d}\n"
            f"mail: {uid}@{domain}\n"
            f"userPassword: {password_hash}\n"
            f"mailHost: {stores[i % len(stores)]}\n"
            f"mailMessageStore: {domain}/{uid}\n"
            "mailAccountStatus: active\n\n")
    return "".join(parts)


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", required=True, help="lab directory")
    ap.add_argument("--users", type=int, required=True, metavar="N", help="how many users to add")
    ap.add_argument("--first", type=int, default=1, metavar="K", help="number of the first user (default 1)")
    ap.add_argument("--stores", help="comma-separated mailHost values (default: every store of the lab)")
    ap.add_argument("--domain", default="example.org", help="mail domain (default example.org)")
    a = ap.parse_args()
    try:
        env = labcommon.load_env(a.lab)
        all_stores = labcommon.all_stores(env)
        stores = a.stores.split(",") if a.stores else labcommon.stores(env)
        for s in stores:
            if s not in all_stores:
                raise labcommon.LabError(f"unknown store '{s}' in --stores (this lab has: {' '.join(all_stores)})")
        if a.users < 0:
            raise labcommon.LabError("--users must be >= 0")
        if a.first < 0 or a.first + a.users - 1 > 99999:
            raise labcommon.LabError(f"user numbers {a.first}..{a.first + a.users - 1} do not fit in 5 digits")
        if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", a.domain) or ".." in a.domain:
            raise labcommon.LabError(f"bad --domain '{a.domain}'")

        uid, gid = int(env["MAIL_UID"]), int(env["MAIL_GID"])
        for s in all_stores:
            d = os.path.join(env[f"{s.upper()}_MAIL_ROOT"], a.domain)
            os.makedirs(d, exist_ok=True)
            os.chown(d, uid, gid)
            os.chmod(d, 0o755)
        if a.users == 0:
            print(0)
            return 0

        ldif = build_ldif(env, a.first, a.users, stores, a.domain, labcommon.ssha("secret"))
        r = subprocess.run(["ldapadd", "-c", "-x", "-H", env["LDAP_URI"], "-D", env["LDAP_ADMIN_DN"],
                            "-y", env["LDAP_ADMIN_PW_FILE"]],
                           input=ldif, capture_output=True, text=True)
        attempted = sum(1 for line in r.stdout.splitlines() if line.startswith("adding new entry"))
        failures = re.findall(r"^ldap_add: (.*) \((\d+)\)$", r.stderr, re.M)
        existing = sum(1 for _, rc in failures if rc == "68")
        other = [f"{msg} ({rc})" for msg, rc in failures if rc != "68"]
        if other or (r.returncode not in (0, 68) and not failures) or attempted != a.users:
            detail = other[0] if other else (" ".join(r.stderr.split()) or f"ldapadd exit {r.returncode}")
            raise labcommon.LabError(f"ldapadd failed for {len(other) or a.users} of {a.users} users: {detail}")
        if existing:
            print(f"{PROG}: {existing} of {a.users} users already existed", file=sys.stderr)
        print(attempted - existing)
        return 0
    except labcommon.LabError as e:
        labcommon.die(PROG, str(e))


if __name__ == "__main__":
    sys.exit(main())
