"""One settings object, read from the environment."""

from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.brokers import broker_urls
from shared.tls import SslMode, rabbit_url_with_tls

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
PLACEHOLDER_SECRETS = frozenset({"", "changethis", "secret", "change-me"})


class ServiceGrant(BaseModel):
    """What one external service (its RabbitMQ user) may do: command names, owners, deactivation,
    and replaying dead letters (an operator: a command it republishes that the inbox holds as
    dead-lettered is applied as the actor that first sent it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    commands: frozenset[str] = frozenset()
    owners: Literal["*"] | frozenset[int] = frozenset()
    may_deactivate: bool = False
    may_replay: bool = False


class Settings(BaseSettings):
    """Every knob of the system; names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    log_level: Annotated[LogLevel, BeforeValidator(lambda value: str(value).upper())] = "INFO"  # gateway and worker

    database_url: str = "sqlite+aiosqlite:///./opengovfood.db"
    read_database_url: str = ""  # empty: the same as DATABASE_URL; several standbys: URLs separated by commas
    db_pool_size: int = 10
    db_max_overflow: int = 20
    db_pool_timeout: float = 30.0
    db_pool_recycle: int = 1800
    db_echo: bool = False

    rabbit_url: str = "amqp://guest:guest@localhost:5672/"
    # The other nodes of a RabbitMQ cluster, `host:port,host:port`: tried in turn when RABBIT_URL's
    # node is unreachable or dies, with RABBIT_URL's user, vhost and TLS (shared/brokers.py).
    rabbit_failover_hosts: str = ""
    # Transport security (docs/security-transport.md): RABBIT_URL amqps://… with these files, and
    # PostgreSQL's sslmode for DATABASE_URL and READ_DATABASE_URL.
    rabbit_tls_ca_file: str | None = None  # the CA that signed the broker's certificate (else the system's)
    rabbit_tls_cert_file: str | None = None  # a client certificate, if the broker asks for one
    rabbit_tls_key_file: str | None = None
    database_sslmode: SslMode | None = None  # None: asyncpg's default (prefer)
    database_sslrootcert: str | None = None  # the CA that signed the server's certificate (else the system's)
    database_sslcert: str | None = None  # a client certificate, if the server asks for one
    database_sslkey: str | None = None
    gateway_bus_user: str = "guest"  # the RabbitMQ user whose messages may assert a user actor
    command_partitions: int = Field(default=4, ge=1, le=64)
    # The event log's retention (shared/event_log.py), set as a policy by `opengovfood bus provision`.
    event_log_max_age: str = Field(default="30D", pattern=r"^[1-9][0-9]*[YMDhms]$")
    event_log_max_bytes: int = Field(default=20 * 10**9, ge=1)

    secret_key: str = "changethis"
    access_token_expire_minutes: int = 60
    jwt_issuer: str = "opengovfood"
    jwt_audience: str = "opengovfood-api"

    publish_timeout: float = 2.0  # seconds the gateway waits for the broker's confirm
    prefer_wait_max: float = 10.0
    consistency_wait: float = 2.0  # seconds a token read waits for the replica
    max_replica_lag_s: float = 5.0  # /health/status says degraded past this
    fast_path: bool = True  # gateway/edge/hot.py answers the item routes; off: FastAPI answers every route
    auth_cache_s: float = 1.0  # how long a verified caller is trusted without looking them up again
    max_hashing: int = 4  # concurrent argon2 computations in one gateway process

    # Limits (see README, "Security"). Rates use the `limits` notation, counted per gateway process.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_import_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)  # all request headers together
    max_uploads_per_caller: int = Field(default=2, ge=1)  # imports one caller may have under way at once
    trusted_proxy_hops: int = Field(default=0, ge=0)  # proxies in front that append X-Forwarded-For
    login_rate_per_client: str = "100/minute"
    login_rate_per_account: str = "10/minute"  # per (client, email): never per email alone
    signup_rate_per_client: str = "20/minute"
    write_rate_per_caller: str = "50/second"
    # External services on the bus: RabbitMQ user name -> grant (JSON in the environment).
    service_grants: dict[str, ServiceGrant] = {}

    worker_index: int = Field(default=0, ge=0)
    worker_count: int = Field(default=1, ge=1)
    worker_batch_size: int = Field(default=400, ge=1)
    worker_batch_bytes: int = Field(default=4 * 2**20, ge=1)  # and at most this much message body
    worker_batch_wait_ms: float = Field(default=2.0, ge=0)
    worker_prefetch: int = Field(default=400, ge=1)
    worker_inflight_bytes: int = Field(default=2**30, ge=2**20)  # what all partitions may hold at once
    worker_transient_retry_limit_s: float = 600.0  # then a command is dead-lettered
    worker_standby_delay_s: float = 5.0  # then subscribe to the other workers' partitions as standby
    worker_heartbeat_file: str = "/tmp/opengovfood-worker.alive"
    worker_metrics_port: int = Field(default=9464, ge=0)  # Prometheus /metrics of the worker; 0: off

    @model_validator(mode="after")
    def _defaults_and_secrets(self) -> "Settings":
        if not self.read_database_url:
            self.read_database_url = self.database_url
        self.rabbit_url = rabbit_url_with_tls(
            self.rabbit_url, self.rabbit_tls_ca_file, self.rabbit_tls_cert_file, self.rabbit_tls_key_file
        )
        if self.environment != "development" and self.secret_key in PLACEHOLDER_SECRETS:
            raise ValueError("SECRET_KEY is a placeholder; set a real secret outside development")
        if self.environment == "production" and unquote(urlparse(self.rabbit_url).username or "guest") == "guest":
            raise ValueError("RABBIT_URL uses the guest user; give each role its own RabbitMQ user in production")
        if self.worker_prefetch < self.worker_batch_size:
            raise ValueError("WORKER_PREFETCH must be at least WORKER_BATCH_SIZE")
        return self

    @property
    def read_database_urls(self) -> list[str]:
        """Each standby READ_DATABASE_URL names (one pool each: gateway/infrastructure/standbys.py)."""
        return [url.strip() for url in self.read_database_url.split(",") if url.strip()]

    @property
    def broker_urls(self) -> list[str]:
        """RABBIT_URL, then each node of RABBIT_FAILOVER_HOSTS: every address a connection may use."""
        return broker_urls(self.rabbit_url, self.rabbit_failover_hosts)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
