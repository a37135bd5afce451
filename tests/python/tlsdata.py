"""TLS material for the twin tests: a test CA, a server certificate it
signed for "localhost", 127.0.0.1 and ::1, and a self-signed certificate
for the same names that no client trusts.  EC P-256 keys (cheap
handshakes), valid until 2126; made once with the openssl command line.

server_context() and client_context() return fresh SSLContexts.
load_cert_chain() reads files only: pem_file() writes the PEM text to a
private temporary directory that is gone when its with block ends, so a
test process that exits without running atexit (a child killed by a test,
a timeout) leaves nothing behind in /tmp.
"""

import contextlib
import os
import ssl
import tempfile

CA_CERT = """\
-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUQIAZpmC3SHA9zQ1LPBdaNM9/nqIwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPYXN5bmN1diB0ZXN0IENBMCAXDTI2MTIwNTAzMTQwNFoYDzIx
MjYxMTExMDMxNDA0WjAaMRgwFgYDVQQDDA9hc3luY3V2IHRlc3QgQ0EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAARxSa/+uJ/WK9K0Kvk2vjb9eYYbY/mOZLfhT01V
QZ2Nl7WS32CRTw1L9O5sEd+CDG2PzDedVDE47vTV5LW+vg4To2MwYTAdBgNVHQ4E
FgQUhLV0oy9dO8kVXw89yb3/K4BdFWQwHwYDVR0jBBgwFoAUhLV0oy9dO8kVXw89
yb3/K4BdFWQwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwCgYIKoZI
zj0EAwIDSAAwRQIgAmfwoZhbU1vZXm1dScDb+wQMZ1da6I30NJFiru3rvKICIQCW
IYdwJH4z5o+qAGZGyhMfsO0H3A5Y+KzcAwyS2eZGvA==
-----END CERTIFICATE-----
"""

SERVER_CERT = """\
-----BEGIN CERTIFICATE-----
MIIBzzCCAXSgAwIBAgIUJttF60vqkqEpZKwrAheiNahsKwQwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPYXN5bmN1diB0ZXN0IENBMCAXDTI2MTIwNTAzMTQwNFoYDzIx
MjYxMTExMDMxNDA0WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAASDyrMqs451C0B/wc/I4e4n73F85qt61UmVO3ffzjwM3RwT
QcPgIyV1xaZPh97SsijnMk8ILmBkuDflXIn8LdE9o4GbMIGYMCwGA1UdEQQlMCOC
CWxvY2FsaG9zdIcEfwAAAYcQAAAAAAAAAAAAAAAAAAAAATAJBgNVHRMEAjAAMB0G
A1UdJQQWMBQGCCsGAQUFBwMBBggrBgEFBQcDAjAdBgNVHQ4EFgQU10TZG00g3phI
ODCEPp7v5NfSfcQwHwYDVR0jBBgwFoAUhLV0oy9dO8kVXw89yb3/K4BdFWQwCgYI
KoZIzj0EAwIDSQAwRgIhAK1mCpEJSxOHUTDgbXo49s1KuCW+wOCjQOA5Z2C6NBuP
AiEA1xxHBVKUJwJUW431id7AtEcRyKPordHlm6s5xe9866k=
-----END CERTIFICATE-----
"""

SERVER_KEY = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgzIS+E9FSwZL96iYh
72pvDnrsYL1eOjXxmLu4tb1cObOhRANCAASDyrMqs451C0B/wc/I4e4n73F85qt6
1UmVO3ffzjwM3RwTQcPgIyV1xaZPh97SsijnMk8ILmBkuDflXIn8LdE9
-----END PRIVATE KEY-----
"""

UNTRUSTED_CERT = """\
-----BEGIN CERTIFICATE-----
MIIBmjCCAUGgAwIBAgIUW8w1D8fQsp1MNYbSt9ULcHNKtMAwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwNTAzMTQwNFoYDzIxMjYxMTEx
MDMxNDA0WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASb5pPOOIsOzPlp9A35E8cU+r6dCbncSs/zS4CP9SB6+k7lfZP4dUaT
xquNoR8XU4XkTsVMaC2w1QhRQL0xaXg2o28wbTAdBgNVHQ4EFgQUeQWU5iTNhyYC
BW/1X4tPdhMjj9YwHwYDVR0jBBgwFoAUeQWU5iTNhyYCBW/1X4tPdhMjj9YwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDRwAwRAIgKnKesaBM7l3fFStkkCJoYKoowgBde7B8udcRUEQ4cBwCIBye
D+SPP92FKuoLRm4uTUceph3cuwXJWrX/GtRt3JSt
-----END CERTIFICATE-----
"""

UNTRUSTED_KEY = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg76Vhxwu9UUIqhM8L
JFQUOHDAOwwlSiqosgFKw1Lmp2GhRANCAASb5pPOOIsOzPlp9A35E8cU+r6dCbnc
Ss/zS4CP9SB6+k7lfZP4dUaTxquNoR8XU4XkTsVMaC2w1QhRQL0xaXg2
-----END PRIVATE KEY-----
"""

@contextlib.contextmanager
def pem_file(text):
    """The path of a file holding text, for as long as the with block runs."""
    with tempfile.TemporaryDirectory(prefix="asyncuv-tls-") as directory:
        path = os.path.join(directory, "cert.pem")
        with open(path, "w") as f:
            f.write(text)
        yield path


def _load_chain(ctx, text):
    with pem_file(text) as path:
        ctx.load_cert_chain(path)


def server_context(untrusted=False):
    """A server context with the CA's certificate (or the untrusted one)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if untrusted:
        _load_chain(ctx, UNTRUSTED_CERT + UNTRUSTED_KEY)
    else:
        _load_chain(ctx, SERVER_CERT + SERVER_KEY)
    return ctx


def client_context():
    """A client context that trusts the CA and checks host names."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=CA_CERT)
    return ctx
