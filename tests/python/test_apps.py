"""Real applications on the loop: aiohttp (server, client, WebSocket, TLS),
uvicorn serving a Starlette app to httpx, and the websockets library.

These are the programs asyncuv's users run; each test drives one of them
through its public API only, end to end over loopback, and checks what
comes back byte for byte.  Every test runs on asyncuv and on the stock
asyncio loop (the reference).  The libraries come from Debian
(python3-aiohttp, python3-uvicorn, python3-starlette, python3-httpx,
python3-websockets); .ci/install installs them.
"""

import asyncio
import glob
import hashlib
import http.client
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
import asyncpg
import httpx
import starlette.applications
import starlette.responses
import starlette.routing
import uvicorn
import websockets
from aiohttp import web

from support import run_guarded

# The CA and server certificate of CPython's own test suite
# (libpython3.11-testsuite): keycert3.pem is signed by pycacert.pem and
# names "localhost".
_CERTS = os.path.join(os.path.dirname(os.__file__), "test")
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
    return web.Response(text="hello " + request.match_info["name"])


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


async def _slow(request):
    # Answers only once the test lets it, long after the client gave up.
    await request.app["release_slow"].wait()
    return web.Response(text="late")


def _aiohttp_app():
    app = web.Application(client_max_size=64 << 20)
    app["release_slow"] = asyncio.Event()
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


def test_aiohttp_requests(loop):
    async def main():
        async with AiohttpServer() as server, client_session() as s:
            async with s.get(server.url + "/hello/world") as r:
                assert r.status == 200
                assert await r.text() == "hello world"
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
                server.runner.app["release_slow"].set()
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
        "hi " + request.path_params["name"])


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
        config = uvicorn.Config(_starlette_app(), http=http, ws="websockets",
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
def test_uvicorn_starlette_httpx(loop, http):
    body = os.urandom(3 << 20)

    async def main():
        async with UvicornServer(http) as server, httpx.AsyncClient() as client:
            r = await client.get(server.url + "/hi/there")
            assert (r.status_code, r.text) == (200, "hi there")
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

def test_websockets_server_and_client(loop):
    async def handler(ws):
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
def test_asyncpg_queries(loop, postgres, via):
    sockdir, port = postgres
    host = "127.0.0.1" if via == "tcp" else sockdir

    async def main():
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
# uvicorn.run() in its own process, as a user starts it, stopped by a signal

_UVICORN_MAIN = r'''
import asyncio, sys
import uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    loop = type(asyncio.get_running_loop())
    body = f"{loop.__module__}.{loop.__qualname__}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})

if sys.argv[1] == "asyncuv":
    import asyncuv
    asyncuv.install()
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), loop="none",
            log_level="info", access_log=False)
'''


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_uvicorn_run_stops_gracefully_on_signal(loop_kind, signum):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", _UVICORN_MAIN, loop_kind,
                             str(port)], stderr=subprocess.PIPE, text=True)
    try:
        # uvicorn logs this line once it listens.
        log = []
        for line in proc.stderr:
            log.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            pytest.fail("uvicorn stopped before listening:\n" + "".join(log))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/")
        response = conn.getresponse()
        expected = ("asyncuv.Loop" if loop_kind == "asyncuv"
                    else "asyncio.unix_events._UnixSelectorEventLoop")
        assert (response.status, response.read().decode()) == (200, expected)
        conn.close()
        proc.send_signal(signum)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = "".join(log) + rest
    assert proc.returncode == 0, log
    assert "Shutting down" in log and "Finished server process" in log, log
