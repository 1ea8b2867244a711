"""`Database`: one async engine, migrations applied at open, and a single-writer gate.

SQLite (the embedded default) runs in WAL mode with `synchronous=NORMAL`: a commit survives a
killed process (the WAL is in the OS's page cache), readers never block the writer, and
`busy_timeout` covers other processes. Writes inside this process go through `write()`,
`write_session()` or `run_write()`, which serialise them with one lock, so that two writers
never race for SQLite's write lock ("database is locked"). On PostgreSQL the lock is not
needed and is a no-op; row-level locking (`FOR UPDATE SKIP LOCKED`) does the work there.

`run_write(fn)` is the hot path (the queue). On SQLite, `fn` runs with a plain synchronous
connection right on the event loop's thread: a queue transaction (a few statements on a few
rows, no fsync at commit in WAL mode with synchronous=NORMAL) takes about 0.1 ms, less than
one hop to another thread costs under the GIL. The one slow part of SQLite writes, the
checkpoint that copies the WAL into the database file and fsyncs it, is kept off the loop:
that connection never checkpoints (`wal_autocheckpoint=0`) and a background task runs a
passive checkpoint on a driver thread every second. On PostgreSQL `fn` runs through the async
driver (`AsyncConnection.run_sync`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import AsyncIterator, Callable, TypeVar

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

log = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class Database:
    """The server's database: build with `await Database.open(url)`, end with `close()`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name  # "sqlite" | "postgresql"
        self.is_sqlite = self.dialect == "sqlite"
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._sync_writer = _SqliteWriter(engine.url) if self.is_sqlite else None
        self._checkpointer: asyncio.Task | None = None

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> "Database":
        """Connect to `url` (SQLite file or PostgreSQL) and apply every pending migration."""
        engine = _create_engine(url)
        db = cls(engine)
        if migrate:
            await db.migrate()
        if db.is_sqlite:
            db._checkpointer = asyncio.get_running_loop().create_task(db._checkpoint_forever())
        return db

    async def migrate(self) -> None:
        """Upgrade the schema to the newest Alembic revision."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade_to_head)

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
        if self._sync_writer is not None:
            async with self._writer_gate():
                self._sync_writer.close()
        await self.engine.dispose()

    async def _checkpoint_forever(self, every: float = 1.0) -> None:
        """Fold the WAL into the database file off the event loop (see the module docstring)."""
        while True:
            await asyncio.sleep(every)
            try:
                async with self.engine.connect() as conn:
                    await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("WAL checkpoint failed", exc_info=True)

    async def run_write(self, fn: Callable[[Connection], T], *, bulk: bool = False) -> T:
        """Run `fn(connection)` (synchronous SQLAlchemy Core calls) in one write transaction,
        committed when it returns, rolled back when it raises. `bulk`: the transaction may
        touch many rows, so on SQLite it runs on a worker thread, not on the event loop."""
        if self._sync_writer is None:
            async with self.engine.begin() as conn:
                return await conn.run_sync(fn)
        async with self._writer_gate():
            if bulk:
                return await asyncio.get_running_loop().run_in_executor(None, self._sync_writer.run, fn)
            return self._sync_writer.run(fn)

    def session(self) -> AsyncSession:
        """A new ORM session (reads; for writes on SQLite prefer `write_session`)."""
        return self._sessions()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection for reads (no transaction is left open afterwards)."""
        async with self.engine.connect() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection in one transaction, committed on success, under the writer gate."""
        async with self._writer_gate():
            async with self.engine.begin() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def write_session(self) -> AsyncIterator[AsyncSession]:
        """An ORM session in one transaction, committed on success, under the writer gate."""
        async with self._writer_gate():
            async with self._sessions() as session, session.begin():
                yield session

    @contextlib.asynccontextmanager
    async def _writer_gate(self) -> AsyncIterator[None]:
        if self._write_lock is None:
            yield
            return
        async with self._write_lock:
            yield

    async def ping(self) -> bool:
        """True when the database answers (for /health)."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            log.warning("database ping failed", exc_info=True)
            return False


def _create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_size=5, max_overflow=5,
                                     pool_reset_on_return=None)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=False)


class _SqliteWriter:
    """One synchronous SQLite connection, used by one caller at a time (under the writer gate):
    on the event loop's thread, or on a worker thread for bulk transactions."""

    def __init__(self, async_url) -> None:
        self._url = async_url.set(drivername="sqlite")
        self._engine = None
        self._conn: Connection | None = None

    def run(self, fn: Callable[[Connection], T]) -> T:
        if self._conn is None:
            self._engine = create_engine(self._url, connect_args={"timeout": 5,
                                                                  "check_same_thread": False})
            event.listen(self._engine, "connect", _sqlite_pragmas)
            event.listen(self._engine, "connect", _no_autocheckpoint)
            self._conn = self._engine.connect()
        with self._conn.begin():
            return fn(self._conn)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            if self._engine is not None:
                self._engine.dispose()
            self._conn = None


def _no_autocheckpoint(dbapi_conn, _record) -> None:
    dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    # 1 MB of page cache per connection (SQLite's default is 2 MB): the OS page cache serves
    # the hot pages just as fast, and a larger per-connection cache only made the server's
    # memory creep up as the history grew (measured: flat with this, +0.7 MB/1000 jobs at 8 MB).
    cur.execute("PRAGMA cache_size=-1000")
    cur.close()


def _upgrade_to_head(sync_conn) -> None:
    # Alembic narrates every plugin at INFO (some on import): keep start-up quiet.
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)
    try:
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "heads")  # every branch: parts of the server add migrations in parallel
    finally:
        alembic_log.setLevel(level)
