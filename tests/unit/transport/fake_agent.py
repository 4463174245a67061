#!/usr/bin/python3
"""A misbehaving agent for the agent transport's bad-input tests.

Usage: fake_agent.py MODE. Reads the client's HELLO, then:
  version   answers HELLO_OK with protocol version 5 (one this mailshard does not speak)
  notagent  answers with a well-formed frame that is not HELLO_OK
  garbage   answers with bytes that are not a frame
  oversize  answers with a frame header announcing 64 MiB
  midframe  answers HELLO_OK, then for the next request half a frame, then exits
  refuse    answers HELLO with an ERROR frame (what a real agent does on a mismatch)
"""
import struct
import sys

out = sys.stdout.buffer
inp = sys.stdin.buffer


def frame(t, payload):
    return struct.pack("<IB", len(payload) + 1, t) + payload


def read_frame():
    head = inp.read(5)
    if len(head) < 5:
        sys.exit(0)
    n, t = struct.unpack("<IB", head)
    return t, inp.read(n - 1)


def hello_ok(version):
    s = b"fake agent"
    return frame(0x02, b"MSAG" + struct.pack("<II", version, 4 << 20) + struct.pack("<I", len(s)) + s)


mode = sys.argv[1]
read_frame()  # HELLO
if mode == "version":
    out.write(hello_ok(5))
elif mode == "notagent":
    out.write(frame(0x30, b"\x00" * 10))
elif mode == "garbage":
    out.write(b"\x00\x00\x00\x00this is not a frame")
elif mode == "oversize":
    out.write(struct.pack("<IB", 64 << 20, 0x02))
elif mode == "refuse":
    msg = b"unsupported protocol version 4 (this agent speaks 7)"
    out.write(frame(0x7F, bytes([10]) + struct.pack("<I", len(msg)) + msg))
elif mode == "midframe":
    out.write(hello_ok(4))
    out.flush()
    read_frame()  # the request
    out.write(struct.pack("<IB", 1000, 0x30) + b"\x00" * 100)
out.flush()
sys.exit(3)
