"""Transport security: TLS towards RabbitMQ and PostgreSQL, from the settings (docs/security-transport.md).

RabbitMQ: the CA, certificate and key files travel in the `amqps://` URL's query (`cafile`,
`certfile`, `keyfile`, read by aiormq), so that every connection made from RABBIT_URL (publishers,
consumers, the topology, the gateway's status probe, the CLI) uses them without a second path.
PostgreSQL: libpq's `sslmode` names, carried out by an SSL context handed to asyncpg.
"""

import ssl
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
_NO_CERTIFICATES: tuple[SslMode, ...] = ("disable", "allow", "prefer")  # asyncpg's own handling, no files


def rabbit_url_with_tls(url: str, ca_file: str | None, cert_file: str | None, key_file: str | None) -> str:
    """The URL with the TLS files in its query; files without `amqps://` are a configuration error."""
    files = {"cafile": ca_file, "certfile": cert_file, "keyfile": key_file}
    if not any(files.values()):
        return url
    parts = urlsplit(url)
    if parts.scheme != "amqps":
        raise ValueError("RABBIT_TLS_* files are set but RABBIT_URL is not amqps://")
    query = dict(parse_qsl(parts.query)) | {name: path for name, path in files.items() if path}
    return urlunsplit(parts._replace(query=urlencode(query)))


def database_ssl(
    mode: SslMode | None, root_cert: str | None, cert: str | None, key: str | None
) -> ssl.SSLContext | str | None:
    """What asyncpg's `ssl` argument gets for this sslmode (None: asyncpg's default, `prefer`).

    As libpq: `require` encrypts without checking the server, unless a root certificate is given
    (then it checks the chain, like `verify-ca`); `verify-ca` checks the chain; `verify-full` also
    checks that the certificate names the host.
    """
    if mode is None or mode in _NO_CERTIFICATES:
        return mode
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=root_cert)
    if mode != "verify-full":
        context.check_hostname = False
    if mode == "require" and root_cert is None:
        context.verify_mode = ssl.CERT_NONE
    if cert:
        context.load_cert_chain(cert, key)
    return context
