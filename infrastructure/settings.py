"""Settings: environment variables (``TRADEWATCH_*``) first, then ``tradewatch.toml``."""

from __future__ import annotations

import os
import re
from contextlib import suppress
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, AwareDatetime, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from application.alerts import AlertSettings
from domain.alert import AlertType, Mode
from domain.controller_policy import Thresholds
from domain.days import zone_named
from infrastructure.logs import LogFormat

DEFAULT_HOME = Path("~/.local/share/tradewatch")
DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
_SYMBOL = re.compile(r"[A-Z0-9]{2,30}")
_DURABLE = r"^[A-Za-z0-9_-]{1,64}$"
_ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+")


def config_file() -> Path:
    """``$TRADEWATCH_CONFIG``, else ``tradewatch.toml`` in the working directory."""
    return Path(os.environ.get("TRADEWATCH_CONFIG", "tradewatch.toml"))


class Settings(BaseSettings):
    """Everything tradewatch can be told. Secrets come from the environment, never the repo."""

    model_config = SettingsConfigDict(env_prefix="TRADEWATCH_", extra="ignore", allow_inf_nan=False)

    home: Path = Field(default=DEFAULT_HOME, description="Data directory (SQLite file, secrets).")
    database_url: str | None = Field(
        default=None,
        description="sqlite:///relative.db, sqlite:////absolute.db or postgresql://user:pass@host:port/db",
    )
    breakeven_pct: float = Field(default=0.5, ge=0, description="±P&L % that counts as breakeven.")
    starting_balance: float = Field(
        default=10_000.0, gt=0, description="Equity before the first trade."
    )
    timezone: str = Field(default="UTC", description="Time zone of 'today' in reports.")
    red_win_rate: float = Field(default=0.65, description="RED below this win rate (last 20).")
    yellow_win_rate: float = Field(default=0.70, description="YELLOW below this win rate.")
    max_daily_loss: float = Field(default=0.04, description="RED when today's loss exceeds this.")
    max_consecutive_losses: int = Field(default=5, description="RED at this many losses in a row.")
    max_drawdown: float = Field(default=0.15, description="RED at this drawdown from the peak.")
    min_sample: int = Field(default=10, description="Trades needed before win-rate rules fire.")

    alerts_signal: Mode = Field(default=Mode.ON, description="on, silent or off.")
    alerts_warning: Mode = Field(default=Mode.ON, description="on, silent or off.")
    alerts_critical: Mode = Field(default=Mode.ON, description="on, silent or off.")
    alerts_daily_status: Mode = Field(default=Mode.ON, description="on, silent or off.")
    alerts_weekly_report: Mode = Field(default=Mode.ON, description="on, silent or off.")
    alerts_predictive_warning: Mode = Field(default=Mode.ON, description="on, silent or off.")
    report_time: time = Field(default=time(8, 0), description="When the daily status is due.")
    models_dir: Path | None = Field(
        default=None,
        description="A signal model directory (with card.json) or a folder of them; "
        "unset: the shipped model.",
    )
    alerts_signal_max_age_minutes: float = Field(
        default=60.0,
        gt=0,
        le=525_600,
        allow_inf_nan=False,
        description="How long a signal without a timeframe stays news (its alert published).",
    )
    nats_url: str | None = Field(default=None, description="nats://host:4222; unset: no relay.")
    nats_user: str | None = None
    nats_password: str | None = None
    nats_token: str | None = None
    nats_creds: Path | None = Field(default=None, description="A NATS .creds file.")
    nats_tls_ca: Path | None = None
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None

    symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_SYMBOLS, description="Symbols to watch, comma-separated (BTCUSDT,...)."
    )
    interval: int = Field(default=15, gt=0, le=10_080, description="Candle interval, minutes.")
    bybit_testnet: bool = Field(
        default=False,
        validation_alias=AliasChoices("bybit_testnet", "tradewatch_bybit_testnet"),
        description="BYBIT_TESTNET: use Bybit's testnet.",
    )
    bybit_demo: bool = Field(
        default=False,
        validation_alias=AliasChoices("bybit_demo", "tradewatch_bybit_demo"),
        description="BYBIT_DEMO: Bybit demo trading (its market data is mainnet's).",
    )
    bybit_url: str | None = Field(
        default=None, description="Bybit REST base URL instead of the standard host."
    )
    bybit_timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds to wait for one Bybit reply."
    )

    # Running: logs, the demo clock (infrastructure/logs.py, infrastructure/clock.py)
    log_format: LogFormat = Field(
        default=LogFormat.TEXT, description="Log lines as text or json (one line each)."
    )
    demo_speed: float = Field(
        default=180.0,
        gt=0,
        le=1_000_000,
        description="How many times faster than real time the demo clock runs "
        "(180: a 15-minute candle every 5 s).",
    )
    demo_start: AwareDatetime | None = Field(
        default=None,
        description="Where the demo clock starts (ISO 8601 with offset); unset: far enough in "
        "the past to stay behind real time for 12 hours.",
    )

    dashboard_host: str = Field(
        default="127.0.0.1",
        description="Where `tradewatch run dashboard` listens (anything but loopback needs a "
        "password).",
    )
    dashboard_port: int = Field(default=5006, ge=1, le=65_535, description="Its port.")
    dashboard_allow_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Other origins whose pages may connect (a reverse proxy's, e.g. "
        "https://dash.example.com), comma-separated.",
    )

    # Alert sinks (docs/alerts.md "Sinks"): durable consumers of TRADEWATCH_ALERTS
    telegram_bot_token: SecretStr | None = Field(
        default=None, description="The Telegram bot's token (from @BotFather); unset: no sink."
    )
    telegram_chat_id: str | None = Field(
        default=None,
        pattern=r"^(-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{3,63})$",
        description="The chat to send to: its number (-100… for groups) or @channelname.",
    )
    telegram_api_url: str = Field(
        default="https://api.telegram.org",
        description="Telegram Bot API base URL (a local Bot API server, or a test's fake).",
    )
    telegram_types: Annotated[tuple[AlertType, ...], NoDecode] = Field(
        default=tuple(AlertType), description="Alert types sent to Telegram, comma-separated."
    )
    telegram_consumer: str = Field(
        default="tradewatch-telegram",
        pattern=_DURABLE,
        description="The Telegram sink's durable consumer (and its delivered-ids bucket).",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server; unset: no e-mail.")
    smtp_port: int = Field(default=587, ge=1, le=65_535, description="SMTP port (STARTTLS).")
    smtp_user: str | None = Field(default=None, description="SMTP login; unset: no login.")
    smtp_password: SecretStr | None = None
    smtp_from: str | None = Field(default=None, description="The From address of alert mails.")
    smtp_to: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Recipients, comma-separated."
    )
    smtp_tls_ca: Path | None = Field(
        default=None, description="CA bundle that signs the SMTP server's certificate."
    )
    smtp_timeout: float = Field(
        default=20.0, gt=0, le=300, description="Seconds to wait for the SMTP server."
    )
    email_types: Annotated[tuple[AlertType, ...], NoDecode] = Field(
        default=tuple(AlertType), description="Alert types sent by e-mail, comma-separated."
    )
    email_consumer: str = Field(
        default="tradewatch-email",
        pattern=_DURABLE,
        description="The e-mail sink's durable consumer (and its delivered-ids bucket).",
    )
    sinks_backfill_minutes: float = Field(
        default=60.0,
        ge=0,
        le=60 * 24 * 366,
        description="A sink's first start also delivers alerts stored this many minutes before.",
    )

    def alert_settings(self) -> AlertSettings:
        """Modes per alert type, the report time and zone, and the controller's limits."""
        modes = {t: getattr(self, f"alerts_{t.value}") for t in AlertType}
        return AlertSettings(
            modes=modes,
            timezone=self.timezone,
            report_time=self.report_time,
            thresholds=self.thresholds(),
            signal_max_age=timedelta(minutes=self.alerts_signal_max_age_minutes),
        )

    def thresholds(self) -> Thresholds:
        """The controller's thresholds (validated: a bad one is a one-line error)."""
        return Thresholds(
            red_win_rate=self.red_win_rate,
            yellow_win_rate=self.yellow_win_rate,
            max_daily_loss=self.max_daily_loss,
            max_consecutive_losses=self.max_consecutive_losses,
            max_drawdown=self.max_drawdown,
            min_sample=self.min_sample,
        )

    @field_validator("home")
    @classmethod
    def _expand(cls, home: Path) -> Path:
        return home.expanduser()

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbol_list(cls, value: object) -> object:
        """``"btcusdt, ETHUSDT"`` → ``("BTCUSDT", "ETHUSDT")``: upper-cased, deduplicated."""
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        symbols = tuple(dict.fromkeys(str(s).strip().upper() for s in items if str(s).strip()))
        bad = [s for s in symbols if not _SYMBOL.fullmatch(s)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a symbol (2 to 30 letters and digits)")
        if not symbols:
            raise ValueError("name at least one symbol")
        return symbols

    @field_validator("bybit_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"must start with http:// or https://, not {url!r}")
        return url

    @field_validator("telegram_types", "email_types", mode="before")
    @classmethod
    def _type_list(cls, value: object) -> object:
        """``"signal, critical"`` → the types; ``all`` (or empty) → all six."""
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        names = [str(t).strip().lower() for t in items if str(t).strip()]
        if not names or names == ["all"]:
            return tuple(AlertType)
        known = {t.value for t in AlertType}
        bad = [n for n in names if n not in known]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an alert type (one of {', '.join(sorted(known))})")
        return tuple(dict.fromkeys(AlertType(n) for n in names))

    @field_validator("smtp_to", mode="before")
    @classmethod
    def _address_list(cls, value: object) -> object:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        addresses = tuple(dict.fromkeys(str(a).strip() for a in items if str(a).strip()))
        bad = [a for a in addresses if not _ADDRESS.fullmatch(a)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an e-mail address")
        return addresses

    @field_validator("dashboard_allow_origins", mode="before")
    @classmethod
    def _origin_list(cls, value: object) -> object:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        origins = tuple(dict.fromkeys(str(o).strip().rstrip("/") for o in items if str(o).strip()))
        bad = [o for o in origins if urlsplit(o).scheme not in ("http", "https")]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an origin (https://host[:port])")
        return origins

    @field_validator("smtp_from")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not _ADDRESS.fullmatch(value.strip()):
            raise ValueError(f"{value!r} is not an e-mail address")
        return None if value is None else value.strip()

    @field_validator("telegram_api_url")
    @classmethod
    def _api_url(cls, url: str) -> str:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"must start with http:// or https://, not {url!r}")
        return url.rstrip("/")

    @property
    def candle_interval(self) -> timedelta:
        """``interval`` as a ``timedelta``."""
        return timedelta(minutes=self.interval)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        zone_named(name)
        return name

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit values, then the environment, then the TOML file."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, config_file()))

    @property
    def database(self) -> str:
        """The effective database URL (the SQLite file under ``home`` by default)."""
        return self.database_url or f"sqlite:///{self.home / 'tradewatch.db'}"


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///`` URL (three slashes: relative path; four: absolute)."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or not url.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite:/// URL: {url!r}")
    path = unquote(url[len("sqlite:///") :])
    if not path:
        raise ValueError("the SQLite URL names no file")
    return path


def private_dir(path: Path) -> Path:
    """Make ``path`` (and its missing parents) if missing, readable by its owner only (0700).

    An existing directory is left as it is: it may be one the user chose to share.
    """
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if missing, readable and writable by its owner only (0600)."""
    private_dir(path.parent)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def eventsourcing_env(url: str) -> dict[str, str]:
    """The eventsourcing library's settings for a database URL.

    A new SQLite file is created 0600 in a 0700 directory first: SQLite gives its journal
    files the database file's permissions.
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = sqlite_path(url)
        if path != ":memory:":
            private_file(Path(path))
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path}
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(url)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parts.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
            # one connection held, up to 5 while threads need them (the library's default
            # holds 5 open per process: a desk's services and commands would run the
            # server out of connections)
            "POSTGRES_POOL_SIZE": "1",
            "POSTGRES_MAX_OVERFLOW": "4",
            "PROCESS_RECORDER_TOPIC": "infrastructure.pg_recorder:ChunkedPostgresProcessRecorder",
        }
    raise ValueError(
        f"TRADEWATCH_DATABASE_URL must start with sqlite:/// or postgresql://, not {url!r}"
    )
