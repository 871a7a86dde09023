"""silent_server.py - a district server that keeps the client waiting, for
t_ui_silent.sh.  Listens on 127.0.0.1 (a port the kernel picks, written to
OUT.port), counts the connections it took in OUT.n, and never answers a
request.
usage: silent_server.py OUT tcp          accepts and never writes a byte
       silent_server.py OUT welcome PKI  completes the TLS handshake as
           popsyncd (PKI/popsyncd.crt, client certificate required), answers
           the Hello with a Welcome (docs/protocol.md §2, §6.2: protocol 1,
           every other field at its default), counts the Welcomes sent in
           OUT.w, then reads and drops
Bounded: exits after 4 minutes; each connection is held until then or
until the client closes it."""
import os
import socket
import ssl
import struct
import sys
import threading
import time

LIFE_S = 240
PS_MSG_WELCOME = 2
out, mode = sys.argv[1], sys.argv[2]
end = time.time() + LIFE_S
held = []
lock = threading.Lock()


def read_exactly(c, n):
    b = b""
    while len(b) < n:
        chunk = c.recv(n - len(b))
        if not chunk:
            raise EOFError
        b += chunk
    return b


def count(path):
    """One more in the file at path (threads: under a lock)."""
    with lock:
        try:
            n = int(open(path).read())
        except (OSError, ValueError):
            n = 0
        with open(path + ".tmp", "w") as f:
            f.write(str(n + 1))
        os.rename(path + ".tmp", path)


def welcome(c, ctx):
    """The handshake, the Hello read whole, a Welcome with its request id,
    then silence: whatever the client asks next is read and dropped."""
    try:
        c.settimeout(30)
        t = ctx.wrap_socket(c, server_side=True)
        held.append(t)
        (length,) = struct.unpack(">I", read_exactly(t, 4))
        head = read_exactly(t, length)
        request_id = head[4:8]
        body = b"\x08\x01"  # Welcome.protocol_version = 1
        t.sendall(struct.pack(">IBBH", 8 + len(body), PS_MSG_WELCOME, 0, 0) + request_id + body)
        count(out + ".w")
        while time.time() < end:
            t.settimeout(1)
            try:
                if not t.recv(65536):
                    return
            except socket.timeout:
                continue
    except (OSError, EOFError, ssl.SSLError):
        return


def main():
    ctx = None
    if mode == "welcome":
        pki = sys.argv[3]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(pki + "/popsyncd.crt", pki + "/popsyncd.key")
        ctx.load_verify_locations(pki + "/ca.crt")
        ctx.verify_mode = ssl.CERT_REQUIRED
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    s.settimeout(0.5)
    with open(out + ".tmp", "w") as f:
        f.write(str(s.getsockname()[1]))
    os.rename(out + ".tmp", out + ".port")
    while time.time() < end:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        count(out + ".n")
        if ctx:
            threading.Thread(target=welcome, args=(c, ctx), daemon=True).start()
        else:
            held.append(c)


main()
