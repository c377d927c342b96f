"""The cluster tests' fresh database and Redis prefix, for deploy tests."""

from tests.cluster.conftest import pg_url, prefix  # noqa: F401
