"""Real applications on the loop: aiohttp (server, client, WebSocket, TLS),
uvicorn serving a Starlette app to httpx (in process, from its command line,
uvicorn.run() and gunicorn's worker), the websockets library, asyncpg on a
private PostgreSQL server, redis-py on a private redis-server, and anyio.

These are the programs asyncuv's users run; each test drives one of them
through its public API only, end to end over loopback, and checks what
comes back byte for byte.  Every test runs on asyncuv and on the stock
asyncio loop (the reference), and checks that it really ran on the loop
it was given (the class of the running loop, seen from inside the
application).  The libraries come from Debian (python3-aiohttp,
python3-uvicorn, python3-starlette, python3-httpx, python3-websockets,
python3-asyncpg, python3-redis, python3-anyio, gunicorn, postgresql,
redis-server); .ci/install installs them on Debian 12, .ci/matrix in its
forky chroot.  The suite runs on what the distribution ships: uvicorn 0.17
(Debian 12) picks its loop through an event loop policy, uvicorn 0.36 and
later (forky: 0.53) through a loop factory, and each is started the way its
users start it.
"""

import asyncio
import glob
import hashlib
import http.client
import importlib.metadata
import io
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile

import pytest

import aiohttp
import anyio
import anyio.abc
import anyio.streams.tls
import asyncpg
import httpx
import starlette.applications
import starlette.responses
import starlette.routing
import uvicorn
import websockets
from aiohttp import web

from support import run_guarded

try:
    import redis
    import redis.asyncio
except ImportError:      # a distribution without python3-redis
    redis = None

# uvicorn 0.36 replaced event loop policies with loop factories: --loop
# takes "module:function" and Config.get_loop_factory() exists.
UVICORN_LOOP_FACTORY = hasattr(uvicorn.Config, "get_loop_factory")
# uvicorn's WebSocket protocol on the websockets library: its Sans-I/O
# one where uvicorn has it (websockets 14 deprecates the legacy API).
UVICORN_WS = ("websockets-sansio" if "websockets-sansio" in getattr(
    uvicorn.config, "WS_PROTOCOLS", {}) else "websockets")
# uvicorn 0.29 and later re-raise the signal that stopped them once they
# have shut down: SIGTERM then ends the process (SIGINT's KeyboardInterrupt
# is caught by uvicorn.run()).
UVICORN_RERAISES = hasattr(uvicorn.Server, "capture_signals")
# anyio.run() takes a loop factory from anyio 4 on, a policy before.
ANYIO_MAJOR = int(importlib.metadata.version("anyio").split(".")[0])

# The class of the running loop, as the applications see it.
LOOP_CLASS = {"asyncuv": "asyncuv.Loop",
              "asyncio": "asyncio.unix_events._UnixSelectorEventLoop"}


def running_loop_class():
    cls = type(asyncio.get_running_loop())
    return f"{cls.__module__}.{cls.__qualname__}"


# The CA and server certificate of CPython's own test suite
# (libpython3.X-testsuite): keycert3.pem is signed by pycacert.pem and
# names "localhost".  They moved to test/certdata in Python 3.12.
_CERTS = os.path.join(os.path.dirname(os.__file__), "test")
if os.path.isdir(os.path.join(_CERTS, "certdata")):
    _CERTS = os.path.join(_CERTS, "certdata")
SERVER_CERT = os.path.join(_CERTS, "keycert3.pem")
CA_CERT = os.path.join(_CERTS, "pycacert.pem")


def pattern(size, seed=0):
    block = bytes((seed + i) % 251 for i in range(251))
    return (block * (size // len(block) + 1))[:size]


def tls_contexts():
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(SERVER_CERT)
    client = ssl.create_default_context(cafile=CA_CERT)
    return server, client


# ---------------------------------------------------------------------------
# aiohttp

async def _hello(request):
    return web.Response(text="hello " + request.match_info["name"],
                        headers={"X-Loop": running_loop_class()})


async def _echo(request):
    # The body streams in: read it in pieces, as a real upload handler does.
    digest = hashlib.sha256()
    size = 0
    async for piece in request.content.iter_chunked(64 << 10):
        digest.update(piece)
        size += len(piece)
    return web.json_response({"size": size, "sha256": digest.hexdigest()})


async def _stream(request):
    count = int(request.query["count"])
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for i in range(count):
        await response.write(pattern(1000, i))
    await response.write_eof()
    return response


async def _ws_upper(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            await ws.send_str(msg.data.upper())
        elif msg.type == aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(msg.data[::-1])
    return ws


async def _tls_version(request):
    ssl_object = request.transport.get_extra_info("ssl_object")
    return web.Response(text=ssl_object.version())


# aiohttp 3.9 and later warn of string keys (NotAppKeyWarning).
RELEASE_SLOW = (web.AppKey("release_slow", asyncio.Event)
                if hasattr(web, "AppKey") else "release_slow")


async def _slow(request):
    # Answers only once the test lets it, long after the client gave up.
    await request.app[RELEASE_SLOW].wait()
    return web.Response(text="late")


def _aiohttp_app():
    app = web.Application(client_max_size=64 << 20)
    app[RELEASE_SLOW] = asyncio.Event()
    app.router.add_get("/hello/{name}", _hello)
    app.router.add_post("/echo", _echo)
    app.router.add_get("/stream", _stream)
    app.router.add_get("/ws", _ws_upper)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/tls", _tls_version)
    return app


class AiohttpServer:
    """An aiohttp application served on 127.0.0.1 (optionally over TLS)."""

    def __init__(self, ssl_context=None):
        self.ssl_context = ssl_context
        self.runner = web.AppRunner(_aiohttp_app())

    async def __aenter__(self):
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0,
                           ssl_context=self.ssl_context)
        await site.start()
        port = self.runner.addresses[0][1]
        scheme = "https" if self.ssl_context else "http"
        host = "localhost" if self.ssl_context else "127.0.0.1"
        self.url = f"{scheme}://{host}:{port}"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


def client_session(**kwargs):
    """An aiohttp client for AiohttpServer.  IPv4 only: over TLS the URL
    names "localhost" (the certificate's name), which Debian's standard
    /etc/hosts also maps to ::1, where nothing listens; aiohttp tries each
    address and reports the last failure, so a refused ::1 would hide the
    answer of the server on 127.0.0.1 (a certificate error, say)."""
    connector = aiohttp.TCPConnector(family=socket.AF_INET)
    return aiohttp.ClientSession(connector=connector, **kwargs)


def test_aiohttp_requests(loop, loop_kind):
    async def main():
        async with AiohttpServer() as server, client_session() as s:
            async with s.get(server.url + "/hello/world") as r:
                assert r.status == 200
                assert await r.text() == "hello world"
                assert r.headers["X-Loop"] == LOOP_CLASS[loop_kind]
            async with s.get(server.url + "/missing") as r:
                assert r.status == 404
            # 200 requests at once share the session's connection pool.
            responses = await asyncio.gather(
                *[s.get(f"{server.url}/hello/{i}") for i in range(200)])
            try:
                texts = [await r.text() for r in responses]
            finally:
                for r in responses:
                    r.release()
            assert texts == [f"hello {i}" for i in range(200)]

    run_guarded(loop, main())


def test_aiohttp_large_upload_and_chunked_download(loop):
    body = os.urandom(8 << 20)

    async def main():
        async with AiohttpServer() as server, client_session() as s:
            async with s.post(server.url + "/echo", data=io.BytesIO(body)) as r:
                assert r.status == 200
                assert await r.json() == {
                    "size": len(body),
                    "sha256": hashlib.sha256(body).hexdigest()}
            async with s.get(server.url + "/stream",
                             params={"count": "3000"}) as r:
                assert r.headers["Transfer-Encoding"] == "chunked"
                got = await r.read()
            assert got == b"".join(pattern(1000, i) for i in range(3000))

    run_guarded(loop, main())


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_aiohttp_file_response(loop, tmp_path, tls):
    # web.FileResponse sends with loop.sendfile() (zero-copy on a plain
    # connection, asyncio's fallback under TLS), whole and by Range.
    content = os.urandom((6 << 20) + 123)
    path = tmp_path / "blob.bin"
    path.write_bytes(content)
    server_ctx, client_ctx = tls_contexts() if tls else (None, None)

    async def send_file(request):
        return web.FileResponse(path)

    async def main():
        server = AiohttpServer(server_ctx)
        server.runner.app.router.add_get("/file", send_file)
        async with server, client_session() as s:
            async with s.get(server.url + "/file", ssl=client_ctx) as r:
                assert r.status == 200
                assert await r.read() == content
            async with s.get(server.url + "/file", ssl=client_ctx,
                             headers={"Range": "bytes=1000-2000999"}) as r:
                assert r.status == 206
                assert await r.read() == content[1000:2001000]

    run_guarded(loop, main())


def test_aiohttp_websocket(loop):
    async def main():
        async with AiohttpServer() as server, client_session() as s:
            async with s.ws_connect(server.url + "/ws") as ws:
                for i in range(50):
                    await ws.send_str(f"message {i}")
                    assert await ws.receive_str() == f"MESSAGE {i}"
                big = pattern(3 << 20, 7)
                await ws.send_bytes(big)
                assert await ws.receive_bytes() == big[::-1]
                await ws.close()
            assert ws.closed
            assert ws.close_code == aiohttp.WSCloseCode.OK

    run_guarded(loop, main())


def test_aiohttp_tls(loop):
    server_ctx, client_ctx = tls_contexts()
    body = os.urandom(2 << 20)

    async def main():
        async with AiohttpServer(server_ctx) as server, \
                client_session() as s:
            async with s.get(server.url + "/hello/tls", ssl=client_ctx) as r:
                assert await r.text() == "hello tls"
            async with s.get(server.url + "/tls", ssl=client_ctx) as r:
                assert await r.text() in ("TLSv1.2", "TLSv1.3")
            async with s.post(server.url + "/echo", data=io.BytesIO(body),
                              ssl=client_ctx) as r:
                assert (await r.json())["sha256"] == hashlib.sha256(body).hexdigest()
            # A client that does not trust the server's CA is refused.
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await s.get(server.url + "/hello/x",
                            ssl=ssl.create_default_context())

    run_guarded(loop, main())


def test_aiohttp_client_timeout_then_server_shutdown(loop):
    async def main():
        async with AiohttpServer() as server:
            timeout = aiohttp.ClientTimeout(total=0.2)
            async with client_session(timeout=timeout) as s:
                with pytest.raises(asyncio.TimeoutError):
                    await s.get(server.url + "/slow")
                server.runner.app[RELEASE_SLOW].set()
                # The connection it left is gone; the next request works.
                async with s.get(server.url + "/hello/again") as r:
                    assert await r.text() == "hello again"
        # The server is down: its port now refuses.
        async with client_session() as s:
            with pytest.raises(aiohttp.ClientConnectorError):
                await s.get(server.url + "/hello/x")

    run_guarded(loop, main())


# ---------------------------------------------------------------------------
# uvicorn + Starlette, driven by httpx

async def _st_hello(request):
    return starlette.responses.PlainTextResponse(
        "hi " + request.path_params["name"],
        headers={"X-Loop": running_loop_class()})


async def _st_sum(request):
    data = await request.body()
    return starlette.responses.JSONResponse(
        {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()})


async def _st_stream(request):
    async def parts():
        for i in range(500):
            yield pattern(2000, i)
    return starlette.responses.StreamingResponse(parts())


async def _st_ws(websocket):
    await websocket.accept()
    while True:
        try:
            text = await websocket.receive_text()
        except starlette.websockets.WebSocketDisconnect:
            return
        await websocket.send_text(text[::-1])


def _starlette_app():
    import starlette.websockets  # noqa: F401 - for WebSocketDisconnect
    return starlette.applications.Starlette(routes=[
        starlette.routing.Route("/hi/{name}", _st_hello),
        starlette.routing.Route("/sum", _st_sum, methods=["POST"]),
        starlette.routing.Route("/stream", _st_stream),
        starlette.routing.WebSocketRoute("/ws", _st_ws),
    ])


class _ReadyServer(uvicorn.Server):
    """uvicorn.Server that says when it serves; the test owns the signals."""

    def __init__(self, config):
        super().__init__(config)
        self.ready = asyncio.Event()

    def install_signal_handlers(self):
        pass

    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        self.ready.set()


class UvicornServer:
    """uvicorn serving the Starlette app on a socket bound beforehand."""

    def __init__(self, http):
        config = uvicorn.Config(_starlette_app(), http=http, ws=UVICORN_WS,
                                lifespan="off", log_level="warning",
                                access_log=False)
        self.server = _ReadyServer(config)

    async def __aenter__(self):
        self.sock = socket.socket()
        try:
            self.sock.bind(("127.0.0.1", 0))
            port = self.sock.getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            self.task = asyncio.ensure_future(
                self.server.serve(sockets=[self.sock]))
            ready = asyncio.ensure_future(self.server.ready.wait())
            await asyncio.wait({ready, self.task},
                               return_when=asyncio.FIRST_COMPLETED)
            if not ready.done():
                ready.cancel()
                self.task.result()  # raises what stopped it
                raise AssertionError("uvicorn stopped before serving")
            assert self.server.started
        except BaseException:
            # No __aexit__ when __aenter__ fails (uvicorn could not start,
            # e.g. an HTTP implementation that does not import): close the
            # socket here, or the next test's gc.collect() reports it as an
            # unclosed socket (ResourceWarning), failing a test that did
            # nothing wrong.
            self.sock.close()
            raise
        return self

    async def __aexit__(self, *exc):
        self.server.should_exit = True
        await self.task
        self.sock.close()


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_uvicorn_starlette_httpx(loop, loop_kind, http):
    body = os.urandom(3 << 20)

    async def main():
        async with UvicornServer(http) as server, httpx.AsyncClient() as client:
            r = await client.get(server.url + "/hi/there")
            assert (r.status_code, r.text) == (200, "hi there")
            assert r.headers["X-Loop"] == LOOP_CLASS[loop_kind]
            results = await asyncio.gather(
                *[client.get(f"{server.url}/hi/{i}") for i in range(100)])
            assert [r.text for r in results] == [f"hi {i}" for i in range(100)]
            r = await client.post(server.url + "/sum", content=body)
            assert r.json() == {"size": len(body),
                                "sha256": hashlib.sha256(body).hexdigest()}
            got = bytearray()
            async with client.stream("GET", server.url + "/stream") as r:
                async for piece in r.aiter_bytes():
                    got += piece
            assert got == b"".join(pattern(2000, i) for i in range(500))

    run_guarded(loop, main())


def test_uvicorn_websocket(loop):
    async def main():
        async with UvicornServer("h11") as server:
            ws_url = server.url.replace("http", "ws") + "/ws"
            async with websockets.connect(ws_url) as ws:
                for word in ("abc", "loop", "x" * 100_000):
                    await ws.send(word)
                    assert await ws.recv() == word[::-1]

    run_guarded(loop, main())


# ---------------------------------------------------------------------------
# websockets (server and client)

def test_websockets_server_and_client(loop, loop_kind):
    async def handler(ws):
        assert running_loop_class() == LOOP_CLASS[loop_kind]
        async for message in ws:
            if isinstance(message, bytes):
                await ws.send(hashlib.sha256(message).digest())
            else:
                await ws.send(message.upper())

    async def main():
        async with websockets.serve(handler, "127.0.0.1", 0,
                                    max_size=None) as server:
            port = server.sockets[0].getsockname()[1]
            async with websockets.connect(f"ws://127.0.0.1:{port}",
                                          max_size=None) as ws:
                await ws.send("quiet")
                assert await ws.recv() == "QUIET"
                blob = os.urandom(5 << 20)
                await ws.send(blob)
                assert await ws.recv() == hashlib.sha256(blob).digest()
                latency = await (await ws.ping())  # the pong came back
                assert latency >= 0
            assert ws.close_code == 1000
            # Many clients at once.
            async def one(i):
                async with websockets.connect(f"ws://127.0.0.1:{port}") as c:
                    await c.send(f"c{i}")
                    return await c.recv()
            got = await asyncio.gather(*[one(i) for i in range(50)])
            assert got == [f"C{i}" for i in range(50)]

    run_guarded(loop, main())


def test_websockets_tls(loop):
    server_ctx, client_ctx = tls_contexts()

    async def handler(ws):
        async for message in ws:
            await ws.send(message[::-1])

    async def main():
        async with websockets.serve(handler, "127.0.0.1", 0,
                                    ssl=server_ctx) as server:
            port = server.sockets[0].getsockname()[1]
            async with websockets.connect(f"wss://localhost:{port}",
                                          ssl=client_ctx) as ws:
                for i in range(20):
                    await ws.send(f"secret {i}")
                    assert await ws.recv() == f"secret {i}"[::-1]

    run_guarded(loop, main())


# ---------------------------------------------------------------------------
# asyncpg, against a private PostgreSQL server started for this module



def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL cluster (Debian's postgresql package), on a
    Unix socket and on 127.0.0.1, TLS on with SERVER_CERT; yields (socket
    dir, TCP port)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]))
    if not found:
        pytest.fail("PostgreSQL is not installed (apt-get install postgresql); "
                    ".ci/install installs it", pytrace=False)
    bindir = os.path.dirname(found[-1])
    # The server refuses to run as root: run it as Debian's postgres user.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    top = tempfile.mkdtemp(prefix="asyncuv-pg-")
    if prefix:
        shutil.chown(top, "postgres")
    data = os.path.join(top, "data")
    port = _free_port()
    subprocess.run(prefix + [os.path.join(bindir, "initdb"), "-D", data,
                             "-A", "trust", "-U", "test", "--no-sync"],
                   check=True, stdout=subprocess.DEVNULL)
    # The server wants its key private to it: a copy, owned by the server.
    pem = os.path.join(top, "server.pem")
    shutil.copyfile(SERVER_CERT, pem)
    os.chmod(pem, 0o600)
    if prefix:
        shutil.chown(pem, "postgres")
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} "
               f"-c unix_socket_directories={top} -c fsync=off "
               f"-c ssl=on -c ssl_cert_file={pem} -c ssl_key_file={pem}")
    subprocess.run(prefix + [os.path.join(bindir, "pg_ctl"), "-D", data,
                             "-o", options, "-l", os.path.join(top, "log"),
                             "-w", "start"],
                   check=True, stdout=subprocess.DEVNULL)
    try:
        yield top, port
    finally:
        subprocess.run(prefix + [os.path.join(bindir, "pg_ctl"), "-D", data,
                                 "-m", "immediate", "-w", "stop"],
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(top, ignore_errors=True)


async def copy_and_read_back(conn, table, rows):
    """COPY (id, payload) rows into a new temporary table; they must read
    back the same, in id order."""
    await conn.execute(f"CREATE TEMP TABLE {table} "
                       "(id int PRIMARY KEY, payload bytea)")
    await conn.copy_records_to_table(table, records=rows)
    got = await conn.fetch(f"SELECT id, payload FROM {table} ORDER BY id")
    assert [tuple(r) for r in got] == rows


@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_asyncpg_queries(loop, loop_kind, postgres, via):
    sockdir, port = postgres
    host = "127.0.0.1" if via == "tcp" else sockdir

    async def main():
        assert running_loop_class() == LOOP_CLASS[loop_kind]
        conn = await asyncpg.connect(host=host, port=port, user="test",
                                     database="postgres")
        try:
            assert await conn.fetchval("SELECT $1::int + $2::int", 40, 2) == 42
            table = f"t_{via}_{os.getpid()}"
            await copy_and_read_back(conn, table, [
                (i, pattern(100 + i % 900, i)) for i in range(20_000)])
            # A transaction that fails leaves nothing behind.
            with pytest.raises(asyncpg.UniqueViolationError):
                async with conn.transaction():
                    await conn.execute(f"INSERT INTO {table} VALUES (-1, '')")
                    await conn.execute(f"INSERT INTO {table} VALUES (0, '')")
            assert await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE id < 0") == 0
            # A query past its timeout is cancelled on the server; the
            # connection stays usable.
            with pytest.raises(asyncio.TimeoutError):
                await conn.execute("SELECT pg_sleep(60)", timeout=0.3)
            assert await conn.fetchval("SELECT 'still here'") == "still here"
        finally:
            await conn.close()

    run_guarded(loop, main())


def test_asyncpg_tls(loop, postgres):
    sockdir, port = postgres
    _, client_ctx = tls_contexts()

    async def main():
        # "localhost" is the certificate's name; asyncpg goes on to the next
        # address if ::1 refuses.
        conn = await asyncpg.connect(host="localhost", port=port, user="test",
                                     database="postgres", ssl=client_ctx)
        try:
            assert await conn.fetchval(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            await copy_and_read_back(conn, f"t_tls_{os.getpid()}", [
                (i, pattern(1000 + i % 3000, i)) for i in range(5_000)])
        finally:
            await conn.close()
        # A client that does not trust the CA is refused the handshake.
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncpg.connect(host="localhost", port=port, user="test",
                                  database="postgres",
                                  ssl=ssl.create_default_context())

    run_guarded(loop, main())


def test_asyncpg_pool_and_notifications(loop, postgres):
    sockdir, port = postgres

    async def main():
        async with asyncpg.create_pool(host="127.0.0.1", port=port,
                                       user="test", database="postgres",
                                       min_size=2, max_size=8) as pool:
            results = await asyncio.gather(*[
                pool.fetchval("SELECT $1::int * 2", i) for i in range(300)])
            assert results == [i * 2 for i in range(300)]

            received = asyncio.Queue()

            def on_notify(connection, pid, channel, payload):
                received.put_nowait(payload)

            async with pool.acquire() as listener:
                await listener.add_listener("events", on_notify)
                for i in range(10):
                    await pool.execute("SELECT pg_notify('events', $1)", f"n{i}")
                got = [await received.get() for _ in range(10)]
                await listener.remove_listener("events", on_notify)
            assert got == [f"n{i}" for i in range(10)]

    run_guarded(loop, main())


# ---------------------------------------------------------------------------
# uvicorn and gunicorn in their own processes, started as users start them,
# stopped by a signal

# The ASGI application: answers with the class of the loop it runs on.
_ASGI_APP = r"""
import asyncio

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    loop = type(asyncio.get_running_loop())
    body = f"{loop.__module__}.{loop.__qualname__}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
"""

# uvicorn.run() in a program of its own: on uvicorn 0.36 and later with the
# loop factory as its loop= argument; on every uvicorn with asyncuv's
# policy (asyncuv.install()) and loop="none", uvicorn 0.17's way.
_UVICORN_RUN = r"""
import sys, warnings
import uvicorn
from app import app

how, port = sys.argv[1], int(sys.argv[2])
if how == "install":
    import asyncuv
    with warnings.catch_warnings():
        # Python 3.14 deprecates event loop policies.
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncuv.install()
    loop = "none"
elif how == "factory":
    loop = "asyncuv:new_event_loop"
else:
    loop = how
uvicorn.run(app, host="127.0.0.1", port=port, loop=loop,
            log_level="info", access_log=False)
"""

# A gunicorn worker class on asyncuv, as the README shows it (the stock
# loop's is uvicorn's own UvicornH11Worker).
_GUNICORN_WORKERS = r"""
import warnings

with warnings.catch_warnings():
    # uvicorn 0.53 says to use the uvicorn-worker package, which Debian
    # does not ship; its module still works.
    warnings.simplefilter("ignore", DeprecationWarning)
    import uvicorn.config
    from uvicorn.workers import UvicornWorker

if hasattr(uvicorn.config.Config, "get_loop_factory"):
    class AsyncuvWorker(UvicornWorker):
        CONFIG_KWARGS = {"loop": "asyncuv:new_event_loop", "http": "auto"}
else:
    # uvicorn before 0.36: the worker's loop comes from the policy.
    import asyncuv
    asyncuv.install()

    class AsyncuvWorker(UvicornWorker):
        CONFIG_KWARGS = {"loop": "none", "http": "auto"}
"""


def _serve_and_stop(argv, cwd, port, ready_line, signum, expected_loop,
                    stopped_lines, returncode=0):
    """Start argv, wait for ready_line in its log, GET / and check the loop
    class the application answers with, send signum; it must exit with
    returncode and stopped_lines in its log.  Returns the log."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [cwd] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stderr=subprocess.PIPE,
                            text=True)
    log, rest = [], ""
    try:
        for line in proc.stderr:
            log.append(line)
            if ready_line in line:
                break
        else:
            pytest.fail(f"{argv[:4]} stopped before listening:\n"
                        + "".join(log))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/")
        response = conn.getresponse()
        answer = (response.status, response.read().decode())
        conn.close()
        proc.send_signal(signum)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = "".join(log) + rest
    assert answer == (200, expected_loop), log
    assert proc.returncode == returncode, log
    for line in stopped_lines:
        assert line in log, log
    return log


@pytest.fixture
def app_dir(tmp_path):
    """A directory with app.py (the ASGI application), run.py (uvicorn.run)
    and workers.py (gunicorn worker classes)."""
    (tmp_path / "app.py").write_text(_ASGI_APP)
    (tmp_path / "run.py").write_text(_UVICORN_RUN)
    (tmp_path / "workers.py").write_text(_GUNICORN_WORKERS)
    return str(tmp_path)


_UVICORN_STOPPED = ("Shutting down", "Finished server process")


def _uvicorn_returncode(signum):
    """How uvicorn exits after a graceful shutdown on signum."""
    if UVICORN_RERAISES and signum == signal.SIGTERM:
        return -signal.SIGTERM
    return 0


@pytest.mark.parametrize("how", ["install", "factory"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_uvicorn_run_stops_gracefully_on_signal(loop_kind, app_dir, how,
                                                signum):
    if how == "factory" and not UVICORN_LOOP_FACTORY:
        pytest.skip(f"uvicorn {uvicorn.__version__} takes no loop factory "
                    "(0.36 and later do); the install scenario covers it")
    if loop_kind == "asyncuv":
        arg = how
    else:
        arg = "none" if how == "install" else "asyncio"
    port = _free_port()
    _serve_and_stop([sys.executable, "run.py", arg, str(port)], app_dir,
                    port, "Uvicorn running on", signum,
                    LOOP_CLASS[loop_kind], _UVICORN_STOPPED,
                    _uvicorn_returncode(signum))


def test_uvicorn_command_line(loop_kind, app_dir):
    """uvicorn --loop asyncuv:new_event_loop app:app (uvicorn 0.36 and
    later); before, python3 -m asyncuv -m uvicorn --loop asyncio app:app
    (their --loop takes only auto|asyncio|uvloop, and asyncio leaves
    the policy python3 -m asyncuv installs alone)."""
    port = _free_port()
    if UVICORN_LOOP_FACTORY:
        loop = "asyncuv:new_event_loop" if loop_kind == "asyncuv" else "asyncio"
        argv = [sys.executable, "-m", "uvicorn", "--loop", loop]
    elif loop_kind == "asyncuv":
        argv = [sys.executable, "-m", "asyncuv", "-m", "uvicorn",
                "--loop", "asyncio"]
    else:
        argv = [sys.executable, "-m", "uvicorn", "--loop", "asyncio"]
    _serve_and_stop(argv + ["--host", "127.0.0.1", "--port", str(port),
                            "--no-access-log", "app:app"], app_dir, port,
                    "Uvicorn running on", signal.SIGTERM,
                    LOOP_CLASS[loop_kind], _UVICORN_STOPPED,
                    _uvicorn_returncode(signal.SIGTERM))


def test_gunicorn_uvicorn_worker(loop_kind, app_dir):
    """gunicorn -k workers.AsyncuvWorker app:app"""
    try:
        import gunicorn  # noqa: F401 - a program of its own here
    except ImportError:
        pytest.skip("gunicorn is not installed (this distribution lacks "
                    "it: Debian's package is gunicorn)")
    port = _free_port()
    worker = ("workers.AsyncuvWorker" if loop_kind == "asyncuv"
              else "uvicorn.workers.UvicornH11Worker")
    # The worker logs its application's start-up once it serves.
    _serve_and_stop(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-m", "gunicorn",
         "-k", worker, "-w", "1", "-b", f"127.0.0.1:{port}",
         "--graceful-timeout", "20", "app:app"], app_dir, port,
        "Application startup complete", signal.SIGTERM,
        LOOP_CLASS[loop_kind], ("Finished server process",
                                "Shutting down: Master"))


# ---------------------------------------------------------------------------
# redis-py (redis.asyncio), against a private redis-server

needs_redis = pytest.mark.skipif(
    redis is None, reason="python3-redis is not installed "
    "(this distribution lacks it)")


@pytest.fixture(scope="module")
def redis_server():
    """A redis-server (Debian's redis-server package) on 127.0.0.1 and a
    Unix socket, nothing saved; yields (socket path, TCP port)."""
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(server):
        pytest.fail("redis-server is not installed (apt-get install "
                    "redis-server); .ci/install installs it", pytrace=False)
    top = tempfile.mkdtemp(prefix="asyncuv-redis-")
    sock = os.path.join(top, "redis.sock")
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1",
         "--unixsocket", sock, "--save", "", "--appendonly", "no",
         "--dir", top, "--loglevel", "notice"],
        stdout=subprocess.PIPE, text=True)
    try:
        log = []
        for line in proc.stdout:
            log.append(line)
            if "Ready to accept connections" in line:
                break
        else:
            pytest.fail("redis-server stopped:\n" + "".join(log),
                        pytrace=False)
        yield sock, port
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
        shutil.rmtree(top, ignore_errors=True)


async def _aclose(obj):
    # redis-py 5 renamed close() aclose().
    await (getattr(obj, "aclose", None) or obj.close)()


@needs_redis
@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_redis_commands_and_pipeline(loop, loop_kind, redis_server, via):
    sock, port = redis_server

    async def main():
        assert running_loop_class() == LOOP_CLASS[loop_kind]
        if via == "tcp":
            r = redis.asyncio.Redis(host="127.0.0.1", port=port)
        else:
            r = redis.asyncio.Redis(unix_socket_path=sock)
        prefix = f"{via}:{loop_kind}:{os.getpid()}"
        try:
            assert await r.ping()
            await r.set(f"{prefix}:k", "v")
            assert await r.get(f"{prefix}:k") == b"v"
            # A big value both ways.
            blob = pattern(5 << 20, 3)
            await r.set(f"{prefix}:blob", blob)
            assert await r.get(f"{prefix}:blob") == blob
            # 300 commands at once share the connection pool.
            await asyncio.gather(*[r.incr(f"{prefix}:n") for _ in range(300)])
            assert int(await r.get(f"{prefix}:n")) == 300
            # A MULTI/EXEC pipeline.
            async with r.pipeline(transaction=True) as pipe:
                for i in range(100):
                    pipe.rpush(f"{prefix}:list", i)
                pipe.lrange(f"{prefix}:list", 0, -1)
                results = await pipe.execute()
            assert results[-1] == [str(i).encode() for i in range(100)]
            # A blocking pop given up by the client: the pool stays usable.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(r.blpop(f"{prefix}:empty", 0), 0.2)
            assert await r.get(f"{prefix}:k") == b"v"
        finally:
            await _aclose(r)
            await r.connection_pool.disconnect()

    run_guarded(loop, main())


@needs_redis
def test_redis_pubsub(loop, loop_kind, redis_server):
    sock, port = redis_server

    async def main():
        assert running_loop_class() == LOOP_CLASS[loop_kind]
        r = redis.asyncio.Redis(host="127.0.0.1", port=port)
        pubsub = r.pubsub()
        channel = f"events:{loop_kind}:{os.getpid()}"
        try:
            await pubsub.subscribe(channel)
            got = []

            async def listen():
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        got.append(message["data"])
                        if len(got) == 50:
                            return

            listener = asyncio.ensure_future(listen())
            # The subscription is confirmed once a publish reaches it.
            while await r.publish(channel, b"n0") == 0:
                await asyncio.sleep(0.01)
            for i in range(1, 50):
                assert await r.publish(channel, f"n{i}") == 1
            await listener
            assert got == [f"n{i}".encode() for i in range(50)]
            await pubsub.unsubscribe(channel)
        finally:
            await _aclose(pubsub) if hasattr(pubsub, "aclose") \
                else await pubsub.reset()
            await _aclose(r)
            await r.connection_pool.disconnect()

    run_guarded(loop, main())


# ---------------------------------------------------------------------------
# anyio, started with anyio.run() on the loop (its asyncio backend)

def anyio_run(loop_kind, func):
    """anyio.run(func) on a new loop of the kind: a loop factory from anyio
    4 on, an event loop policy before."""
    import asyncuv
    if ANYIO_MAJOR >= 4:
        factory = (asyncuv.new_event_loop if loop_kind == "asyncuv"
                   else asyncio.new_event_loop)
        return anyio.run(func, backend="asyncio",
                         backend_options={"loop_factory": factory})
    policy = (asyncuv.EventLoopPolicy() if loop_kind == "asyncuv"
              else asyncio.DefaultEventLoopPolicy())
    return anyio.run(func, backend="asyncio",
                     backend_options={"policy": policy})


def test_anyio_streams_tasks_threads_processes(loop_kind, restore_policy):
    server_ctx, client_ctx = tls_contexts()
    blob = pattern(4 << 20, 5)

    async def main():
        loop_class = running_loop_class()
        # TCP: a listener serving in a task group, a client stream.
        async def handle(stream):
            async with stream:
                data = bytearray()
                while len(data) < len(blob):
                    data += await stream.receive()
                await stream.send(hashlib.sha256(data).digest())

        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(blob)
                assert await client.receive() == hashlib.sha256(blob).digest()
            # TLS over anyio's own TLS stream.
            tls_listener = anyio.streams.tls.TLSListener(
                await anyio.create_tcp_listener(local_host="127.0.0.1"),
                server_ctx, standard_compatible=False)
            tls_port = tls_listener.listener.extra(
                anyio.abc.SocketAttribute.local_port)
            tg.start_soon(tls_listener.serve, handle)
            async with await anyio.connect_tcp(
                    "localhost", tls_port, ssl_context=client_ctx,
                    tls_standard_compatible=False) as client:
                await client.send(blob)
                assert await client.receive() == hashlib.sha256(blob).digest()
            tg.cancel_scope.cancel()
        # Serving ended by the cancellation: the listeners stay open.
        await listener.aclose()
        await tls_listener.aclose()
        # Cancel scopes and timeouts.
        with anyio.move_on_after(0.05) as scope:
            await anyio.sleep(30)
        assert scope.cancel_called
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.05):
                await anyio.sleep(30)
        # Memory object streams between tasks.
        send, receive = anyio.create_memory_object_stream(10)
        got = []

        async def consume():
            async with receive:
                async for item in receive:
                    got.append(item)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            async with send:
                for i in range(1000):
                    await send.send(i)
        assert got == list(range(1000))
        # A worker thread, and a process.
        assert await anyio.to_thread.run_sync(sum, range(1000)) == 499500
        result = await anyio.run_process(
            [sys.executable, "-c", "import sys; print(sys.stdin.read()[::-1])"],
            input=b"anyio")
        assert (result.returncode, result.stdout) == (0, b"oiyna\n")
        return loop_class

    assert anyio_run(loop_kind, main) == LOOP_CLASS[loop_kind]
