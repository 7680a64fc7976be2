"""An independent HTTP/3 client (aioquic) speaking to an openrelay egress.

It checks our wire format against another implementation:
  * CONNECT in the form RFC 9114 section 4.4 prescribes (only :method and
    :authority), then bytes both ways on the request stream;
  * extended CONNECT with :protocol connect-udp (RFC 9298 section 3.4) and
    UDP payloads in HTTP Datagrams (RFC 9297 section 2.1) framed by aioquic,
    context ID 0 (RFC 9298 section 4).

Usage:
  aioquic_masque.py egress EGRESS_HOST EGRESS_PORT TCP_PORT UDP_PORT
  aioquic_masque.py ingress INGRESS_HOST INGRESS_PORT EGRESS_HOST EGRESS_PORT UDP_PORT
(TCP_PORT: an HTTP server answering GET /hello; UDP_PORT: a UDP echo server,
both on 127.0.0.1). In ingress mode it checks that connect-udp to a known
egress relay is accepted and to anything else refused with 403. Prints one
line per check; exits non-zero on failure.
"""
import asyncio
import ssl
import sys

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, DatagramReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # enable_webtransport makes aioquic announce SETTINGS_H3_DATAGRAM and
        # SETTINGS_ENABLE_CONNECT_PROTOCOL, which connect-udp needs.
        self.h3 = H3Connection(self._quic, enable_webtransport=True)
        self.events = asyncio.Queue()

    def quic_event_received(self, event):
        for h3_event in self.h3.handle_event(event):
            self.events.put_nowait(h3_event)

    async def next_event(self, stream_id, kinds):
        while True:
            event = await asyncio.wait_for(self.events.get(), 5)
            if isinstance(event, kinds) and getattr(event, "stream_id", None) == stream_id:
                return event


def status_of(headers):
    return dict(headers).get(b":status")


def configuration():
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, max_datagram_frame_size=65536)
    # Key pinning is tested elsewhere; this test is about the wire format.
    config.verify_mode = ssl.CERT_NONE
    return config


async def connect_udp(client, proxy, target_host, target_port):
    """Sends connect-udp for target via proxy; returns (stream id, response headers)."""
    stream = client._quic.get_next_available_stream_id()
    path = f"/.well-known/masque/udp/{target_host}/{target_port}/".encode()
    client.h3.send_headers(stream, [
        (b":method", b"CONNECT"), (b":protocol", b"connect-udp"), (b":scheme", b"https"),
        (b":authority", proxy.encode()), (b":path", path), (b"capsule-protocol", b"?1"),
    ])
    client.transmit()
    response = await client.next_event(stream, HeadersReceived)
    return stream, dict(response.headers)


async def ingress_checks(host, port, egress_host, egress_port, udp_port):
    async with connect(host, port, configuration=configuration(), create_protocol=Client) as client:
        _, headers = await connect_udp(client, f"{host}:{port}", egress_host, egress_port)
        assert headers.get(b":status") == b"200", headers
        assert headers.get(b"capsule-protocol") == b"?1", headers
        print("ingress accepts egress ok")
        _, headers = await connect_udp(client, f"{host}:{port}", "127.0.0.1", udp_port)
        assert headers.get(b":status") == b"403", headers
        print("ingress refuses other targets ok")


async def egress_checks(host, port, tcp_port, udp_port):
    async with connect(host, port, configuration=configuration(), create_protocol=Client) as client:
        # CONNECT (TCP), RFC 9114 section 4.4: no :scheme, no :path.
        stream = client._quic.get_next_available_stream_id()
        client.h3.send_headers(stream, [(b":method", b"CONNECT"), (b":authority", f"127.0.0.1:{tcp_port}".encode())])
        client.transmit()
        response = await client.next_event(stream, HeadersReceived)
        assert status_of(response.headers) == b"200", response.headers
        client.h3.send_data(stream, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", end_stream=False)
        client.transmit()
        body = b""
        while True:
            event = await client.next_event(stream, DataReceived)
            body += event.data
            if event.stream_ended:
                break
        assert body.startswith(b"HTTP/1.1 200"), body[:80]
        assert body.endswith(b"\r\n\r\nhello from the openrelay test server\n"), body
        print("tcp connect ok")

        # connect-udp, RFC 9298 section 3.4, default URI template.
        stream, headers = await connect_udp(client, f"{host}:{port}", "127.0.0.1", udp_port)
        assert headers.get(b":status") == b"200", headers
        for i in range(5):
            payload = f"datagram {i}".encode()
            # aioquic adds the quarter stream ID; the context ID 0 is ours to add.
            client.h3.send_datagram(stream, b"\x00" + payload)
            client.transmit()
            event = await client.next_event(stream, DatagramReceived)
            assert event.data == b"\x00" + payload, event.data
        print("udp connect ok")

        # A refused destination: 403 with a Proxy-Status naming the error.
        stream = client._quic.get_next_available_stream_id()
        client.h3.send_headers(stream, [(b":method", b"CONNECT"), (b":authority", b"10.0.0.1:80")])
        client.transmit()
        response = await client.next_event(stream, HeadersReceived)
        headers = dict(response.headers)
        assert headers.get(b":status") == b"403", response.headers
        assert b"error=destination_ip_prohibited" in headers.get(b"proxy-status", b""), response.headers
        print("refusal ok")


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "egress":
        checks = egress_checks(args[0], int(args[1]), int(args[2]), int(args[3]))
    else:
        checks = ingress_checks(args[0], int(args[1]), args[2], int(args[3]), int(args[4]))
    asyncio.run(asyncio.wait_for(checks, 20))
