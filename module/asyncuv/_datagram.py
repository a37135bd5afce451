"""UDP and Unix datagram endpoints of asyncuv.Loop, with asyncio's
semantics: create_datagram_endpoint() and a DatagramTransport."""

import os
import socket
import stat
import sys

from asyncio.log import logger

from ._network import _set_reuse_port


class DatagramMixin:
    """create_datagram_endpoint() for Loop."""

    async def create_datagram_endpoint(self, protocol_factory,
                                       local_addr=None, remote_addr=None, *,
                                       family=0, proto=0, flags=0,
                                       reuse_port=None,
                                       allow_broadcast=None, sock=None):
        """Create a datagram endpoint; return (transport, protocol)."""
        if sock is not None:
            if sys.version_info >= (3, 13):
                # Any socket but a stream one (SOCK_SEQPACKET too).
                if sock.type == socket.SOCK_STREAM:
                    raise ValueError(
                        f'A datagram socket was expected, got {sock!r}')
            elif sock.type != socket.SOCK_DGRAM:
                raise ValueError(f'A UDP Socket was expected, got {sock!r}')
            if (local_addr or remote_addr or family or proto or flags or
                    reuse_port or allow_broadcast):
                opts = dict(local_addr=local_addr, remote_addr=remote_addr,
                            family=family, proto=proto, flags=flags,
                            reuse_port=reuse_port,
                            allow_broadcast=allow_broadcast)
                problems = ', '.join(f'{k}={v}' for k, v in opts.items() if v)
                raise ValueError(
                    f'socket modifier keyword arguments can not be used '
                    f'when sock is specified. ({problems})')
            sock.setblocking(False)
            r_addr = None
        else:
            pairs = await self._datagram_address_pairs(
                local_addr, remote_addr, family, proto, flags)
            sock, r_addr = await self._open_datagram_socket(
                pairs, local_addr, remote_addr, reuse_port, allow_broadcast)

        protocol = protocol_factory()
        waiter = self.create_future()
        transport = self._make_datagram_transport(sock, protocol, r_addr, waiter)
        if self.get_debug():
            if local_addr:
                logger.info('Datagram endpoint local_addr=%r remote_addr=%r '
                            'created: (%r, %r)', local_addr, remote_addr,
                            transport, protocol)
            else:
                logger.debug('Datagram endpoint remote_addr=%r created: '
                             '(%r, %r)', remote_addr, transport, protocol)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    async def _datagram_address_pairs(self, local_addr, remote_addr, family,
                                      proto, flags):
        """[((family, proto), (local, remote)), ...] to try in order."""
        if not (local_addr or remote_addr):
            if family == 0:
                raise ValueError('unexpected address family')
            return [((family, proto), (None, None))]
        if family == socket.AF_UNIX:
            for addr in (local_addr, remote_addr):
                if addr is not None and not isinstance(addr, str):
                    raise TypeError('string is expected')
            if local_addr and local_addr[0] not in (0, '\x00'):
                try:
                    if stat.S_ISSOCK(os.stat(local_addr).st_mode):
                        os.remove(local_addr)
                except FileNotFoundError:
                    pass
                except OSError as err:
                    logger.error('Unable to check or remove stale UNIX '
                                 'socket path %r: %r', local_addr, err)
            return [((family, proto), (local_addr, remote_addr))]

        # Group the resolved addresses by (family, proto), in order.
        infos_by_key = {}
        for idx, addr in ((0, local_addr), (1, remote_addr)):
            if addr is None:
                continue
            if not (isinstance(addr, tuple) and len(addr) == 2):
                raise TypeError('2-tuple is expected')
            infos = await self._resolve(addr, family=family,
                                        type=socket.SOCK_DGRAM, proto=proto,
                                        flags=flags)
            if not infos:
                raise OSError('getaddrinfo() returned empty list')
            for fam, _, pro, _, address in infos:
                infos_by_key.setdefault((fam, pro), [None, None])[idx] = address
        pairs = [(key, pair) for key, pair in infos_by_key.items()
                 if not ((local_addr and pair[0] is None) or
                         (remote_addr and pair[1] is None))]
        if not pairs:
            raise ValueError('can not get address information')
        return pairs

    async def _open_datagram_socket(self, pairs, local_addr, remote_addr,
                                    reuse_port, allow_broadcast):
        exceptions = []
        for (family, proto), (local_address, remote_address) in pairs:
            sock = None
            r_addr = None
            try:
                sock = socket.socket(family=family, type=socket.SOCK_DGRAM,
                                     proto=proto)
                if reuse_port:
                    _set_reuse_port(sock)
                if allow_broadcast:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                sock.setblocking(False)
                if local_addr:
                    sock.bind(local_address)
                if remote_addr:
                    if not allow_broadcast:
                        await self.sock_connect(sock, remote_address)
                    r_addr = remote_address
            except OSError as exc:
                if sock is not None:
                    sock.close()
                exceptions.append(exc)
            except BaseException:
                if sock is not None:
                    sock.close()
                raise
            else:
                return sock, r_addr
        raise exceptions[0]
