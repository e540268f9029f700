"""The DynamoDB calls' HTTP client against loopback servers that answer byte by byte as each test needs:
keep-alive, its limit, closes, chunks, timeouts, cancellations, garbage and TLS."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.dynamodb.http import (
    Answer,
    ConnectFailed,
    ConnectionClosed,
    ConnectTimedOut,
    HttpPool,
    ReadTimedOut,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def answer(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{line}\r\n" for line in extra)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nX-Amz-Crc32: 7\r\n{head}\r\n".encode() + body


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's body (requests carry a Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return await reader.readexactly(length)


class Server:
    """A loopback server: every connection is served by ``handler``; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.closed = 0  # connections the client closed while their handler read or wrote
        self.port = 0
        self._served: list[tuple[asyncio.Task[None], asyncio.StreamWriter]] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._served.append((task, writer))
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            self.closed += 1  # the client went away

    @contextlib.asynccontextmanager
    async def running(self, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        self.port = server.sockets[0].getsockname()[1]
        try:
            async with server:
                yield self
        finally:
            # Every connection's handler ended and its socket closed before the test's loop goes.
            for task, writer in self._served:
                task.cancel()
                writer.close()
            await asyncio.gather(*(task for task, _ in self._served), return_exceptions=True)
            for _, writer in self._served:
                with contextlib.suppress(ConnectionError, ssl.SSLError):
                    await writer.wait_closed()


def echo_forever(*extra: str, delay: float = 0.0) -> Handler:
    """Answers every request with its body, ``delay`` seconds after it came."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await read_request(reader)
            if delay:
                await asyncio.sleep(delay)
            writer.write(answer(body, *extra))

    return handle


def pool(port: int, *, scheme: str = "http", host: str = "127.0.0.1", **options: float) -> HttpPool:
    settings = {"limit": 4, "keepalive": 10.0, "connect_timeout": 1.0, "read_timeout": 1.0, **options}
    return HttpPool(f"{scheme}://{host}:{port}", **settings)  # type: ignore[arg-type]


async def test_calls_share_a_kept_alive_connection_and_get_their_own_answers() -> None:
    async with Server(echo_forever()).running() as server:
        client = pool(server.port)
        for index in range(5):
            got = await client.post({"Host": "x"}, f"call {index}".encode())
            assert got == Answer(200, {"content-length": "6", "x-amz-crc32": "7"}, f"call {index}".encode())
        assert server.connections == 1
        await client.aclose()


async def test_concurrent_calls_open_at_most_the_limit_of_connections() -> None:
    async with Server(echo_forever(delay=0.01)).running() as server:
        client = pool(server.port, limit=3)
        bodies = [f"{index}".encode() for index in range(30)]
        answers = await asyncio.gather(*(client.post({}, body) for body in bodies))
        assert [got.body for got in answers] == bodies
        assert server.connections == 3
        await client.aclose()


async def test_a_server_that_closes_after_its_answer_gets_a_new_connection_for_the_next_call() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(await read_request(reader), "Connection: close"))
        await writer.drain()

    async with Server(once).running() as server:
        client = pool(server.port)
        assert (await client.post({}, b"a")).body == b"a"
        assert (await client.post({}, b"b")).body == b"b"
        assert server.connections == 2
        await client.aclose()


async def test_a_connection_idle_past_the_keepalive_is_not_reused() -> None:
    async with Server(echo_forever()).running() as server:
        client = pool(server.port, keepalive=0.05)
        await client.post({}, b"a")
        await asyncio.sleep(0.1)
        await client.post({}, b"b")
        assert server.connections == 2
        await client.aclose()


async def test_connections_idle_past_the_keepalive_are_closed_by_the_next_call() -> None:
    async with Server(echo_forever(delay=0.02)).running() as server:
        client = pool(server.port, keepalive=0.1)
        await asyncio.gather(client.post({}, b"a"), client.post({}, b"b"))
        assert server.connections == 2
        await asyncio.sleep(0.2)
        await client.post({}, b"c")
        await asyncio.sleep(0.05)
        assert server.connections == 3
        assert server.closed == 2  # both idle ones, not only the one the call would have used
        await client.aclose()


async def test_an_interim_answer_is_skipped_for_the_answer_that_follows_it() -> None:
    async def interim(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await read_request(reader)
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(answer(body))

    async with Server(interim).running() as server:
        client = pool(server.port)
        assert (await client.post({}, b"a")) == Answer(200, {"content-length": "1", "x-amz-crc32": "7"}, b"a")
        assert (await client.post({}, b"b")).body == b"b"
        assert server.connections == 1
        await client.aclose()


@pytest.mark.parametrize(
    ("unasked", "rest"), [(answer(b"for nobody"), b""), (b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsta", b"le!")]
)
async def test_bytes_sent_while_no_call_waits_close_the_connection(unasked: bytes, rest: bytes) -> None:
    """A whole answer nobody asked for, or the start of one whose rest follows the next request."""
    served = 0

    async def chatty_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        served += 1
        if served > 1:
            await echo_forever()(reader, writer)
        writer.write(answer(await read_request(reader)))
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(unasked)
        writer.write(rest + answer(await read_request(reader)))
        await asyncio.sleep(10)

    async with Server(chatty_first).running() as server:
        client = pool(server.port, read_timeout=5.0)
        assert (await client.post({}, b"a")).body == b"a"
        await asyncio.sleep(0.05)
        # Not read as this call's answer: a new connection gets its own.
        assert (await client.post({}, b"b")).body == b"b"
        assert server.connections == 2
        await client.aclose()


async def test_a_closed_pool_fails_its_calls_in_flight_and_refuses_later_ones() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    async with Server(never).running() as server:
        client = pool(server.port, read_timeout=5.0)
        in_flight = asyncio.ensure_future(client.post({}, b"a"))
        await asyncio.sleep(0.05)
        await client.aclose()
        with pytest.raises(ConnectionClosed):
            await in_flight
        with pytest.raises(ConnectionClosed, match="closed"):
            await client.post({}, b"b")
        assert server.connections == 1


async def test_a_chunked_answer_arriving_in_pieces_is_whole() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\nx-amzn-RequestId: r1\r\n\r\n")
        for piece in (b"5\r\nhello\r\n", b"6\r\n world\r\n", b"0\r\n\r\n"):
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(piece)
        await reader.read()

    async with Server(chunked).running() as server:
        client = pool(server.port)
        got = await client.post({}, b"")
        assert (got.status, got.body, got.headers["x-amzn-requestid"]) == (400, b"hello world", "r1")
        await client.aclose()


async def test_a_cancelled_call_closes_its_connection_so_its_late_answer_reaches_no_other_call() -> None:
    async def late_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await read_request(reader)
            if body == b"first":
                await asyncio.sleep(0.2)
            writer.write(answer(body))

    async with Server(late_first).running() as server:
        client = pool(server.port, limit=1)
        first = asyncio.ensure_future(client.post({}, b"first"))
        await asyncio.sleep(0.05)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert (await client.post({}, b"second")).body == b"second"
        assert server.connections == 2
        await client.aclose()


async def test_an_answer_that_stops_coming_times_out_and_a_slow_but_steady_one_does_not() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await read_request(reader)
            pause = 0.3 if body == b"stall" else 0.05
            whole = answer(body * 20)
            for start in range(0, len(whole), 20):
                writer.write(whole[start : start + 20])
                await writer.drain()
                await asyncio.sleep(pause)

    async with Server(trickle).running() as server:
        client = pool(server.port, read_timeout=0.15)
        # Each piece within the timeout of the last, the whole answer taking far longer than it.
        assert (await client.post({}, b"steady")).body == b"steady" * 20
        with pytest.raises(ReadTimedOut):
            await client.post({}, b"stall")
        await client.aclose()


@pytest.mark.parametrize(
    "reply",
    [b"SSH-2.0-OpenSSH_9.2\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"],
    ids=["garbage", "cut"],
)
async def test_garbage_or_a_cut_answer_is_connection_closed(reply: bytes) -> None:
    async def bad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        writer.close()

    async with Server(bad).running() as server:
        client = pool(server.port)
        with pytest.raises(ConnectionClosed):
            await client.post({}, b"x")
        await client.aclose()


async def test_nothing_listening_fails_to_connect() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = pool(port)
    with pytest.raises(ConnectFailed):
        await client.post({}, b"x")
    await client.aclose()


async def test_a_connection_never_accepted_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        # Connections never accepted fill the listener's queue; once it is full, handshakes go unanswered.
        queued: list[socket.socket] = []
        try:
            while len(queued) < 8:
                held = socket.socket()
                queued.append(held)
                held.settimeout(0.2)
                try:
                    held.connect(("127.0.0.1", port))
                except TimeoutError:
                    break
            else:
                pytest.fail("the listener's queue never filled")
            client = pool(port, connect_timeout=0.2)
            with pytest.raises(ConnectTimedOut):
                await client.post({}, b"x")
            await client.aclose()
        finally:
            for held in queued:
                held.close()


def certificate_authority(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA's certificate file, and a server context with a certificate it issued for localhost."""
    now = datetime.datetime.now(datetime.UTC)

    def issue(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name,
        signer: ec.EllipticCurvePrivateKey,
        *,
        ca: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = issue("test CA", ca_key, ca_name, ca_key, ca=True)
    server = issue("localhost", server_key, ca_name, ca_key, ca=False)
    ca_file, chain, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain, key_file)
    return ca_file, context


async def test_tls_verifies_the_endpoints_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca_file, server_context = certificate_authority(tmp_path)
    async with Server(echo_forever()).running(server_context) as server:
        # Not issued by a CA the system trusts: refused.
        untrusted = pool(server.port, scheme="https", host="localhost")
        with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusted.post({}, b"x")
        await untrusted.aclose()
        # OpenSSL's default verify paths honour SSL_CERT_FILE: now the CA is the one trusted.
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        trusted = pool(server.port, scheme="https", host="localhost")
        assert (await trusted.post({}, b"secret")).body == b"secret"
        # The same certificate named by another host name is refused.
        wrong_name = pool(server.port, scheme="https", host="127.0.0.1")
        with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await wrong_name.post({}, b"x")
        await trusted.aclose()
        await wrong_name.aclose()


def test_only_http_endpoints() -> None:
    with pytest.raises(ValueError, match="not an http"):
        pool(1, scheme="ftp")
