"""The "internet" of the full-device VPN tests, run inside the test's
internet namespace: an HTTP server and a UDP echo server on 198.18.0.1
(each tells the peer address it saw), and a DNS server on 127.0.0.1:53 (the
egresses' resolver) that answers A queries for dest.test with 198.18.0.1 and
NXDOMAIN for anything else. Prints "ready" once everything listens."""
import http.server
import socket
import socketserver
import sys
import threading

DEST = "198.18.0.1"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from the destination; you are {self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def udp_echo(sock):
    while True:
        data, peer = sock.recvfrom(65535)
        sock.sendto(data + f" from {peer[0]}".encode(), peer)


def dns(sock):
    while True:
        query, peer = sock.recvfrom(65535)
        if len(query) < 12:
            continue
        # Question: labels up to the zero byte, then QTYPE and QCLASS.
        i = 12
        labels = []
        while i < len(query) and query[i] != 0:
            n = query[i]
            labels.append(query[i + 1:i + 1 + n].decode(errors="replace").lower())
            i += 1 + n
        question = query[12:i + 5]
        qtype = query[i + 1:i + 3]
        name = ".".join(labels)
        found = name == "dest.test" and qtype == b"\x00\x01"
        flags = b"\x81\x80" if found or name == "dest.test" else b"\x81\x83"
        answer = query[:2] + flags + b"\x00\x01" + (b"\x00\x01" if found else b"\x00\x00") + b"\x00\x00\x00\x00" + question
        if found:
            answer += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + socket.inet_aton(DEST)
        sock.sendto(answer, peer)


http_server = Server((DEST, 80), Handler)
echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
echo.bind((DEST, 7))
resolver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
resolver.bind(("127.0.0.1", 53))
for target, arg in ((udp_echo, echo), (dns, resolver)):
    threading.Thread(target=target, args=(arg,), daemon=True).start()
print("ready", flush=True)
threading.Thread(target=http_server.serve_forever, daemon=True).start()
sys.stdin.read()
