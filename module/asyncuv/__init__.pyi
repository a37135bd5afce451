# mypy: warn-unused-ignores=False
# (Three ignores below are needed by older typesheds only: Debian 12's mypy.)
# Types of the asyncuv package.  asyncuv.Loop is an
# asyncio.AbstractEventLoop: every method has the signature typeshed gives
# AbstractEventLoop (3.11 to 3.14), with the keywords asyncuv accepts on
# every version (all_errors=, keep_alive=, cleanup_socket=, ...).
# create_server() and create_unix_server() return asyncuv.Server, an
# asyncio.AbstractServer (typeshed says asyncio.Server, the stock loop's).
import asyncio
import socket
import ssl
import sys
from _typeshed import FileDescriptorLike, ReadableBuffer, StrPath, WriteableBuffer
from asyncio.events import _ProtocolFactory, _SSLContext
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent.futures import Executor
from typing import IO, Any, TypeVar

from ._asyncuv import Handle as Handle, LoopBase, TimerHandle as TimerHandle
from ._asyncuv import libasyncuv_version as libasyncuv_version

_T = TypeVar("_T")
_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)

if sys.version_info >= (3, 12):
    from typing_extensions import TypeVarTuple, Unpack

    _Ts = TypeVarTuple("_Ts")

if sys.version_info >= (3, 14):
    # The typeshed of 3.14's type checkers tells the address families apart.
    from typing import Literal

    _GetAddrInfoResult = list[
        tuple[Literal[socket.AddressFamily.AF_INET], socket.SocketKind, int, str, tuple[str, int]]
        | tuple[
            Literal[socket.AddressFamily.AF_INET6], socket.SocketKind, int, str, tuple[str, int, int, int] | tuple[int, bytes]
        ]
    ]
else:
    _GetAddrInfoResult = list[
        tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int] | tuple[str, int, int, int]]
    ]

__version__: str

class Server(asyncio.AbstractServer):
    def get_loop(self) -> Loop: ...
    def is_serving(self) -> bool: ...
    @property
    def sockets(self) -> tuple[socket.socket, ...]: ...
    def close(self) -> None: ...
    if sys.version_info >= (3, 13):
        def close_clients(self) -> None: ...
        def abort_clients(self) -> None: ...
    async def start_serving(self) -> None: ...
    async def serve_forever(self) -> None: ...
    async def wait_closed(self) -> None: ...

class Loop(LoopBase, asyncio.AbstractEventLoop):
    def __init__(self) -> None: ...
    async def shutdown_asyncgens(self) -> None: ...
    async def shutdown_default_executor(self, timeout: float | None = None) -> None: ...
    if sys.version_info >= (3, 12):
        def run_in_executor(
            self, executor: Executor | None, func: Callable[[Unpack[_Ts]], _T], *args: Unpack[_Ts]
        ) -> asyncio.Future[_T]: ...
    else:
        def run_in_executor(
            self, executor: Executor | None, func: Callable[..., _T], *args: Any
        ) -> asyncio.Future[_T]: ...
    def set_default_executor(self, executor: Any) -> None: ...
    # Names and addresses.
    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> _GetAddrInfoResult: ...
    async def getnameinfo(
        self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int = 0
    ) -> tuple[str, str]: ...
    # Connections and servers.
    async def create_connection(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        host: str | None = None,
        port: int | None = None,
        *,
        ssl: _SSLContext = None,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        sock: socket.socket | None = None,
        local_addr: tuple[str, int] | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        happy_eyeballs_delay: float | None = None,
        interleave: int | None = None,
        all_errors: bool = False,
    ) -> tuple[asyncio.Transport, _ProtocolT]: ...
    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: _ProtocolFactory,
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        *,
        family: int = 0,
        flags: int = 1,
        sock: socket.socket | Iterable[socket.socket] | None = None,
        backlog: int = 100,
        ssl: _SSLContext = None,
        reuse_address: bool | None = None,
        reuse_port: bool | None = None,
        keep_alive: bool | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        start_serving: bool = True,
    ) -> Server: ...
    async def start_tls(
        self,
        transport: asyncio.BaseTransport,
        protocol: asyncio.BaseProtocol,
        sslcontext: ssl.SSLContext,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> asyncio.Transport: ...
    async def create_unix_server(  # type: ignore[override]
        self,
        protocol_factory: _ProtocolFactory,
        path: StrPath | None = None,
        *,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: _SSLContext = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        start_serving: bool = True,
        cleanup_socket: bool = True,
    ) -> Server: ...
    async def connect_accepted_socket(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        sock: socket.socket,
        *,
        ssl: _SSLContext = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[asyncio.Transport, _ProtocolT]: ...
    async def create_unix_connection(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        path: StrPath | None = None,
        *,
        ssl: _SSLContext = None,
        sock: socket.socket | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[asyncio.Transport, _ProtocolT]: ...
    async def sock_sendfile(
        self,
        sock: socket.socket,
        file: IO[bytes],
        offset: int = 0,
        count: int | None = None,
        *,
        fallback: bool | None = True,
    ) -> int: ...
    async def sendfile(
        self,
        transport: asyncio.WriteTransport,
        file: IO[bytes],
        offset: int = 0,
        count: int | None = None,
        *,
        fallback: bool = True,
    ) -> int: ...
    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        local_addr: tuple[str, int] | str | None = None,
        remote_addr: tuple[str, int] | str | None = None,
        *,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        reuse_address: bool | None = None,
        reuse_port: bool | None = None,
        allow_broadcast: bool | None = None,
        sock: socket.socket | None = None,
    ) -> tuple[asyncio.DatagramTransport, _ProtocolT]: ...
    # Pipes and subprocesses.
    async def connect_read_pipe(
        self, protocol_factory: Callable[[], _ProtocolT], pipe: Any
    ) -> tuple[asyncio.ReadTransport, _ProtocolT]: ...
    async def connect_write_pipe(
        self, protocol_factory: Callable[[], _ProtocolT], pipe: Any
    ) -> tuple[asyncio.WriteTransport, _ProtocolT]: ...
    async def subprocess_shell(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        cmd: bytes | str,
        *,
        stdin: int | IO[Any] | None = -1,
        stdout: int | IO[Any] | None = -1,
        stderr: int | IO[Any] | None = -1,
        universal_newlines: bool = False,
        shell: bool = True,
        bufsize: int = 0,
        encoding: None = None,
        errors: None = None,
        text: bool | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.SubprocessTransport, _ProtocolT]: ...
    async def subprocess_exec(
        self,
        protocol_factory: Callable[[], _ProtocolT],
        program: Any,
        *args: Any,
        stdin: int | IO[Any] | None = -1,
        stdout: int | IO[Any] | None = -1,
        stderr: int | IO[Any] | None = -1,
        universal_newlines: bool = False,
        shell: bool = False,
        bufsize: int = 0,
        encoding: None = None,
        errors: None = None,
        text: bool | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.SubprocessTransport, _ProtocolT]: ...
    # Sockets.
    async def sock_recv(self, sock: socket.socket, nbytes: int) -> bytes: ...
    async def sock_recv_into(self, sock: socket.socket, buf: WriteableBuffer) -> int: ...
    # Older typeshed (Debian 12's mypy 1.0) had the returns of these three
    # wrong: the ignores are used there only.
    async def sock_recvfrom(self, sock: socket.socket, bufsize: int) -> tuple[bytes, Any]: ...  # type: ignore[override]
    async def sock_recvfrom_into(  # type: ignore[override]
        self, sock: socket.socket, buf: WriteableBuffer, nbytes: int = 0
    ) -> tuple[int, Any]: ...
    async def sock_sendall(self, sock: socket.socket, data: ReadableBuffer) -> None: ...
    async def sock_sendto(self, sock: socket.socket, data: ReadableBuffer, address: Any) -> int: ...  # type: ignore[override]
    async def sock_connect(self, sock: socket.socket, address: Any) -> None: ...
    async def sock_accept(self, sock: socket.socket) -> tuple[socket.socket, Any]: ...
    # Signals.
    if sys.version_info >= (3, 12):
        def add_signal_handler(
            self, sig: int, callback: Callable[[Unpack[_Ts]], object], *args: Unpack[_Ts]
        ) -> None: ...
    else:
        def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None: ...
    def remove_signal_handler(self, sig: int) -> bool: ...

def new_event_loop() -> Loop: ...
def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T: ...
def install() -> None: ...

if sys.version_info >= (3, 14):
    # Looked up through the module's __getattr__, with a DeprecationWarning,
    # as asyncio's policy classes are.
    class EventLoopPolicy(asyncio.events._BaseDefaultEventLoopPolicy):
        def get_child_watcher(self) -> Any: ...
        def set_child_watcher(self, watcher: Any) -> None: ...
else:
    class EventLoopPolicy(asyncio.events.BaseDefaultEventLoopPolicy):
        def get_child_watcher(self) -> Any: ...
        def set_child_watcher(self, watcher: Any) -> None: ...
