"""Engines: where compiled SQL runs. A small interface under `Store`, one class per engine.

An engine registers a store's tables, runs one compiled statement to an Arrow table, can be
interrupted from another thread, closes, and describes itself. Its `dialect` is what the
compiler writes for it. Engine failures reach the store as `EngineFailure` with a kind
(interrupted, out_of_memory, error) and one clean line of text, never an engine traceback.

* `DuckDBEngine`: the embedded default (the connection is opened and locked down by
  `commerceql.store`).
* `SparkEngine`: Spark through Spark Connect (`sc://host:port`) or a local session
  (`local[*]`) when no remote is given. Sessions are pinned to UTC.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from commerceql.dialect import DUCKDB, SPARK, Dialect
from commerceql.errors import CommerceQLDataError


class EngineFailure(Exception):
    """A statement failed in the engine. `kind`: "interrupted", "out_of_memory" or "error"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class Engine:
    name = "engine"
    dialect: Dialect = DUCKDB

    def run(self, sql: str, parameters: Mapping[str, object] | None = None) -> Any:
        """Run one statement and return its rows as a pyarrow Table."""
        raise NotImplementedError

    def interrupt(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


class DuckDBEngine(Engine):
    name = "duckdb"
    dialect = DUCKDB

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self.connection = connection

    def run(self, sql: str, parameters: Mapping[str, object] | Sequence[object] | None = None) -> Any:
        try:
            relation = self.connection.sql(sql, params=parameters or None)
            if relation is None:  # a statement without a result
                import pyarrow as pa

                return pa.table({})
            fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
            return fetch()
        except duckdb.InterruptException as exc:
            raise EngineFailure("interrupted", "the query was interrupted") from exc
        except duckdb.OutOfMemoryException as exc:
            raise EngineFailure("out_of_memory", _first_line(exc)) from exc
        except duckdb.Error as exc:
            raise EngineFailure("error", _first_line(exc)) from exc

    def interrupt(self) -> None:
        self.connection.interrupt()

    def close(self) -> None:
        self.connection.close()

    def describe(self) -> str:
        return f"DuckDB {duckdb.__version__} (embedded)"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# ---------------------------------------------------------------------------------------------
# Spark
# ---------------------------------------------------------------------------------------------

_LOCAL_SESSION: Any = None
_LOCAL_LOCK = threading.Lock()
_LOG_CONFIG = Path(__file__).parent / "resources" / "spark-log4j2.properties"


def spark_unavailable() -> str | None:
    """Why a local Spark cannot start here (one line), or None when pyspark and Java are present."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'commerceql[spark]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java for a local Spark (no `java` on PATH, no JAVA_HOME; apt-get install openjdk-17-jre-headless)"
    return None


def _spark_missing(what: str) -> CommerceQLDataError:
    return CommerceQLDataError(
        f"the Spark engine needs {what}",
        hint="install it with `pip install 'commerceql[spark]'` (pyspark), and Java 17 "
        "(Debian: `apt-get install openjdk-17-jre-headless`) for a local Spark",
    )


def _local_spark(memory_limit: str | None) -> Any:
    """One local Spark per process (a JVM is costly); each store gets its own session of it."""
    global _LOCAL_SESSION
    with _LOCAL_LOCK:
        if _LOCAL_SESSION is not None:
            return _LOCAL_SESSION
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise _spark_missing("pyspark") from exc
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise CommerceQLDataError(
                "a local Spark needs Java, and none was found (no `java` on PATH, no JAVA_HOME)",
                hint="install Java 17 (Debian: `apt-get install openjdk-17-jre-headless`), "
                "or connect to a Spark Connect server with spark_remote='sc://host:15002'",
            )
        java_options = f"-Dlog4j.configurationFile=file:{_LOG_CONFIG}"
        builder = (
            SparkSession.builder.master(os.environ.get("COMMERCEQL_SPARK_MASTER", "local[*]"))
            .appName("commerceql")
            .config("spark.sql.session.timeZone", "UTC")  # every instant is UTC; conversions are explicit
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "4")  # small aggregates: few partitions are faster
            .config("spark.sql.ansi.enabled", "false")  # x / 0 is NULL as in DuckDB's NULLIF guards
            .config("spark.driver.extraJavaOptions", java_options)
            .config("spark.log.structuredLogging.enabled", "false")
        )
        if memory_limit:
            builder = builder.config("spark.driver.memory", memory_limit.replace(" ", "").lower().rstrip("b") or "1g")
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # pyspark raises several types when the JVM cannot start
            raise CommerceQLDataError(
                f"a local Spark could not start: {_first_line(exc)}",
                hint="check that Java 17 is installed (`java -version`) and JAVA_HOME points at it",
            ) from exc
        session.sparkContext.setLogLevel("OFF")
        _LOCAL_SESSION = session
        return session


def spark_connect_unavailable() -> str | None:
    """Why a Spark Connect client cannot run here (one line), or None when its packages are present."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'commerceql[spark]')"
    import importlib.util

    # pyspark[connect]'s own dependencies: without them `builder.remote(...)` fails on import.
    missing = [name for module, name in (("grpc", "grpcio"), ("grpc_status", "grpcio-status"),
                                         ("google.rpc", "googleapis-common-protos"), ("zstandard", "zstandard"))
               if _find_module(module, importlib.util) is None]
    if missing:
        return f"the Spark Connect client needs {', '.join(missing)} (pip install 'commerceql[spark]')"
    return None


def _find_module(name: str, util: Any) -> Any:
    try:
        return util.find_spec(name)
    except (ImportError, ValueError):  # a parent package (google) is missing
        return None


def _remote_spark(remote: str) -> Any:
    """A session of its own on the Spark Connect server at `remote`, pinned to UTC."""
    if not remote.startswith("sc://"):
        raise CommerceQLDataError(
            f"a Spark Connect address starts with sc://, not {remote!r}", hint="for example sc://localhost:15002"
        )
    missing = spark_connect_unavailable()
    if missing:
        raise CommerceQLDataError(f"cannot use Spark Connect: {missing}",
                                  hint="install the Spark extra: pip install 'commerceql[spark]'")
    _probe_server(remote)
    from pyspark.sql import SparkSession

    # pyspark marks the whole process as "Spark Connect mode" when a remote session is made, which
    # sends its classic API (a local Spark of another store in this process) down the Connect path.
    marker_was_set = "SPARK_CONNECT_MODE_ENABLED" in os.environ
    try:
        # create(), not getOrCreate(): getOrCreate hands every caller the process's one default
        # session, so two stores on one server would share (and overwrite) their temporary views.
        session = SparkSession.builder.remote(remote).create()
        session.conf.set("spark.sql.session.timeZone", "UTC")  # every instant is UTC; conversions are explicit
        session.conf.set("spark.sql.ansi.enabled", "false")  # x / 0 is NULL as in DuckDB's NULLIF guards
    except Exception as exc:
        raise CommerceQLDataError(
            f"cannot reach Spark Connect at {remote}: {_spark_error_text(exc)}",
            hint="check that the server runs (`start-connect-server.sh`) and the address and port are right",
        ) from exc
    finally:
        if not marker_was_set:
            os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    return session


def _probe_server(remote: str, timeout: float = 10.0) -> None:
    """Fail at once, naming the address, when nothing listens there.

    The Connect client retries an unreachable server with backoff for about ten minutes before
    it gives up; a plain TCP connection answers the common case (wrong port, server not started).
    """
    import socket
    from urllib.parse import urlsplit

    try:
        address = urlsplit(remote.replace("sc://", "http://", 1))
        host, port = address.hostname or "localhost", address.port or 15002
    except ValueError as exc:
        raise CommerceQLDataError(f"{remote!r} is not a Spark Connect address",
                                  hint="for example sc://localhost:15002") from exc
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise CommerceQLDataError(
            f"cannot reach Spark Connect at {remote}: nothing answers on {host}:{port} ({exc.strerror or exc})",
            hint="check that the server runs (`start-connect-server.sh`, default port 15002) and the address is right",
        ) from exc


def _spark_value(value: object) -> object:
    """A parameter as Spark binds it without reference to the machine's time zone.

    PySpark reads a naive datetime in the machine's local zone; CommerceQL's naive datetimes
    are wall-clock times held as the instant whose UTC reading they are, so they become UTC.
    """
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


class SparkEngine(Engine):
    """Spark through Spark Connect (`remote`) or the process's local Spark.

    Every statement runs under a tag of its own (a Spark Connect operation tag; on a local Spark
    a job tag of the thread that runs it), so `interrupt()` stops this store's statement and no
    other: another store's query on the same server or the same local Spark keeps running.
    """

    name = "spark"
    dialect = SPARK

    def __init__(self, *, remote: str | None = None, memory_limit: str | None = None) -> None:
        base = _remote_spark(remote) if remote else _local_spark(memory_limit)
        # A session of its own: temporary views are per session, so two stores never mix.
        self.session = base if remote else base.newSession()
        self.remote = remote
        self._tags_lock = threading.Lock()
        self._running: set[str] = set()  # tags of the statements running now
        self._interrupted: set[str] = set()  # ... of those an interrupt() reached

    def register_parquet(self, tables: Mapping[str, str]) -> None:
        for name, location in tables.items():
            try:
                self.session.read.parquet(location).createOrReplaceTempView(name)
            except Exception as exc:
                raise CommerceQLDataError(
                    f"Spark cannot read table `{name}` at {location}: {_spark_error_text(exc)}"
                ) from exc

    def run(self, sql: str, parameters: Mapping[str, object] | None = None) -> Any:
        args = {k: _spark_value(v) for k, v in (parameters or {}).items()}
        tag = f"commerceql-{uuid.uuid4().hex}"
        self._start_tagging(tag)
        try:
            frame = self.session.sql(sql, args=args or None)
            return _like_duckdb(frame.toArrow())
        except Exception as exc:
            text = _spark_error_text(exc)
            with self._tags_lock:
                interrupted = tag in self._interrupted
            if interrupted or _looks_cancelled(text):
                raise EngineFailure("interrupted", "the query was interrupted") from exc
            if "OutOfMemory" in text or "Java heap space" in text:
                raise EngineFailure("out_of_memory", text) from exc
            raise EngineFailure("error", _spark_message(text)) from exc
        finally:
            self._stop_tagging(tag)

    def _start_tagging(self, tag: str) -> None:
        # Tags are per thread: set here, in the thread that runs the statement.
        if self.remote:
            self.session.addTag(tag)
        else:
            context = self.session.sparkContext
            context.addJobTag(tag)
            # Cancelling a job only marks its tasks killed; a long scan stops at once only when its
            # task threads are interrupted as well.
            context.setInterruptOnCancel(True)
        with self._tags_lock:
            self._running.add(tag)

    def _stop_tagging(self, tag: str) -> None:
        with self._tags_lock:
            self._running.discard(tag)
            self._interrupted.discard(tag)
        try:
            if self.remote:
                self.session.removeTag(tag)
            else:
                self.session.sparkContext.removeJobTag(tag)
        except Exception:  # a session closed meanwhile: nothing left to untag
            pass

    def interrupt(self) -> None:
        """Stop this store's running statement (its tag's operations or jobs); no-op when idle.

        A statement still being analysed has no job yet, so a cancel then is lost: callers repeat
        it until the statement ends (`commerceql.store.run_interruptibly` does).
        """
        with self._tags_lock:
            tags = list(self._running)
            self._interrupted.update(tags)
        for tag in tags:
            try:
                if self.remote:
                    self.session.interruptTag(tag)
                else:
                    self.session.sparkContext.cancelJobsWithTag(tag)
            except Exception:  # the statement ended meanwhile, or the session is closed
                pass

    def close(self) -> None:
        if self.remote:
            # Releases this store's session (and its views) on the server; the server keeps running.
            try:
                self.session.stop()
            except Exception:
                pass
            return
        # The local JVM is shared by the process's stores; dropping this session's views is enough.
        try:
            for table in self.session.catalog.listTables():
                if table.isTemporary:
                    self.session.catalog.dropTempView(table.name)
        except Exception:
            pass

    def describe(self) -> str:
        where = f"Spark Connect at {self.remote}" if self.remote else "a local Spark"
        return f"Spark {self.session.version} ({where})"


def _looks_cancelled(text: str) -> bool:
    lowered = text.lower()
    return "cancelled" in lowered or "canceled" in lowered or "interrupted" in lowered


def _spark_error_text(error: BaseException) -> str:
    """One line saying what went wrong in Spark, without JVM stack frames or py4j wrapping.

    A local Spark often raises `Py4JJavaError("An error occurred while calling o123.getResult")`
    whose useful text is in the Java exception's cause chain; Spark Connect and pyspark's own
    errors carry it in their message.
    """
    java = getattr(error, "java_exception", None)
    if java is not None:
        messages: list[str] = []
        try:
            cause = java
            for _ in range(12):  # the chain is short; bounded against cycles
                if cause is None:
                    break
                message = cause.getMessage()
                if message:
                    messages.append(str(message).strip().splitlines()[0])
                cause = cause.getCause()
        except Exception:  # a gateway already gone: fall back to the Python text
            messages = []
        # The deepest cause names the problem (e.g. the raise_error text), the outer ones wrap it.
        for message in reversed(messages):
            if message and not message.startswith("An error occurred while calling"):
                return message
    return _first_line(error)


def _like_duckdb(table: Any) -> Any:
    """Spark's Arrow result with DuckDB's types for the same SQL, so both engines' frames compare.

    Division: Spark keeps DECIMAL with at least 6 decimals (its rule for decimal quotients)
    where DuckDB gives DOUBLE, so such columns become DOUBLE. Sums: Spark's DECIMAL(28, s) is
    DuckDB's DECIMAL(38, s). Integers: Spark's INT results are BIGINT in DuckDB.
    """
    import pyarrow as pa

    fields = []
    for field in table.schema:
        kind = field.type
        if pa.types.is_decimal(kind):
            kind = pa.float64() if kind.scale >= 6 else pa.decimal128(38, kind.scale)
        elif pa.types.is_int32(kind) or pa.types.is_int16(kind) or pa.types.is_int8(kind):
            kind = pa.int64()
        fields.append(pa.field(field.name, kind))
    target = pa.schema(fields)
    return table if target == table.schema else table.cast(target)


def _spark_message(text: str) -> str:
    """Spark's error line without its internal class prefix and SQLSTATE tail."""
    for prefix in ("[", ):
        if text.startswith(prefix) and "] " in text:
            text = text.split("] ", 1)[1]
    return text.split(" SQLSTATE:")[0].strip()
