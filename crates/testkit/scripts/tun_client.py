"""Run in the client namespace: `dns SERVER NAME` sends one A query for NAME
to SERVER:53 over UDP (or `dns-tcp` over TCP) and prints the addresses in the
answer; `udp HOST PORT TEXT` sends one datagram and prints the reply;
`marked-udp HOST PORT` sends one datagram carrying the client's firewall mark
(as the client's own sockets do) and prints "sent" or "refused" (the local
firewall refused it). Exits non-zero on timeout."""
import socket
import struct
import sys


def query(name):
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00\x00\x01\x00\x01"


def addresses(answer):
    # Every A record's data: TYPE 1, CLASS 1, RDLENGTH 4.
    out = []
    i = 12
    while True:
        j = answer.find(b"\x00\x01\x00\x01", i)
        if j < 0 or j + 10 + 4 > len(answer):
            return out
        if answer[j + 8:j + 10] == b"\x00\x04":
            out.append(socket.inet_ntoa(answer[j + 10:j + 14]))
        i = j + 1


mode = sys.argv[1]
if mode == "dns":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(8)
    s.sendto(query(sys.argv[3]), (sys.argv[2], 53))
    answer, _ = s.recvfrom(65535)
    assert answer[:2] == b"\x12\x34", "answer ID"
    print(" ".join(addresses(answer)) or "none")
elif mode == "dns-tcp":
    s = socket.create_connection((sys.argv[2], 53), timeout=8)
    q = query(sys.argv[3])
    s.sendall(struct.pack("!H", len(q)) + q)
    n = struct.unpack("!H", s.recv(2))[0]
    answer = b""
    while len(answer) < n:
        answer += s.recv(n - len(answer))
    print(" ".join(addresses(answer)) or "none")
elif mode == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(8)
    s.sendto(sys.argv[4].encode(), (sys.argv[2], int(sys.argv[3])))
    print(s.recvfrom(65535)[0].decode())
elif mode == "marked-udp":
    host, port = sys.argv[2], int(sys.argv[3])
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    SO_MARK = 36
    s.setsockopt(socket.SOL_SOCKET, SO_MARK, 0x6F72)
    try:
        s.sendto(b"marked", (host, port))
        print("sent")
    except PermissionError:
        print("refused")
