"""Configuration, from flags and ``SWITCHBOARD_*`` environment variables."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Every setting of one app server; see docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    database_url: str = "sqlite:///switchboard.db"
    # None: run alone with the in-process address book and backplane.
    redis_url: str | None = None
    redis_prefix: str = "sb:"
    secret_key: SecretStr = SecretStr("")
    # The key the shop signs customer tokens with. It is given to the shop,
    # so it must not be the server's own key (which signs agent tokens);
    # when unset, customer tokens are signed with the secret key, which is
    # only acceptable when the shop and Switchboard are one deployment.
    customer_key: SecretStr | None = None

    # Clients ping every interval; a connection silent for the timeout is
    # closed and its address expires. The timeout spans several intervals
    # so that one delayed ping never drops a healthy client.
    heartbeat_interval: float = Field(10.0, gt=0, le=300)
    heartbeat_timeout: float = Field(30.0, gt=0, le=900)
    # A server's liveness key lives this long without a refresh.
    server_ttl: float = Field(15.0, gt=0, le=900)

    agent_capacity: int = Field(5, ge=1, le=1000)
    # At most 50,000 so that one message always fits one backplane payload.
    max_body: int = Field(4000, ge=1, le=50_000)
    max_addresses_per_user: int = Field(20, ge=1, le=1000)
    # Status-board changes are pushed to agents at most this often.
    board_interval: float = Field(0.1, ge=0, le=10)
    # Protocol errors tolerated per connection before it is closed.
    max_protocol_errors: int = Field(20, ge=1)
    # Frames waiting to be written to one connection before it is closed
    # as too slow (it resumes from its last seq when it reconnects).
    max_outbox: int = Field(1000, ge=10)
    # Messages stored in one database transaction at most.
    write_batch: int = Field(256, ge=1, le=10_000)

    commerce_url: str | None = None
    commerce_token: SecretStr | None = None
    # Shop origins allowed to embed the widget from another site (CORS),
    # e.g. ["https://shop.example.com"]; "*" allows any.
    cors_origins: list[str] = []
    # Anonymous visitors must give a name and email before chatting.
    require_prechat: bool = False

    @model_validator(mode="after")
    def _timeout_spans_intervals(self) -> Self:
        if self.heartbeat_timeout <= self.heartbeat_interval:
            raise ValueError("heartbeat_timeout must be longer than the interval")
        return self
