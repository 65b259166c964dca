#!/usr/bin/env python3
"""Silent and half-sent connections against a running BFF: how many stay
open and what the BFF's resident memory does meanwhile.

    crates/bff-load/conn/silent.py PID PORT [CONNECTIONS] [SECONDS]

Opens CONNECTIONS sockets to 127.0.0.1:PORT (half send nothing, half send
half a request head and stop), then every second prints how many the
server still keeps open and the BFF's VmRSS from /proc/PID/status. A
measurement, not a test: the figures are in SECURITY.md. Pin the BFF and
this script to different cores (taskset) as for every figure here.
"""

import socket
import sys
import time


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def still_open(sock):
    """False once the server closed (EOF or reset)."""
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def main():
    pid, port = int(sys.argv[1]), int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 4000
    seconds = int(sys.argv[4]) if len(sys.argv) > 4 else 45
    print(f"before: VmRSS {rss_mib(pid):.1f} MiB")
    socks, refused = [], 0
    for n in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            refused += 1
            continue
        if n % 2:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: bff\r\n")
        # Non-blocking: a socket with a timeout waits that long in recv() first.
        sock.setblocking(False)
        socks.append(sock)
    print(f"opened {len(socks)} connections ({refused} refused at connect)")
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        alive = [s for s in socks if still_open(s)]
        print(f"{elapsed:5.1f} s: {len(alive):5d} open, VmRSS {rss_mib(pid):6.1f} MiB", flush=True)
        if elapsed >= seconds:
            break
        time.sleep(1)
    for sock in socks:
        sock.close()


if __name__ == "__main__":
    main()
