"""Opening an MLflow store safely when several processes start at once.

MLflow creates (and migrates) a SQLite store's schema on first use. Two processes doing that on the
same fresh ``mlflow.db`` race inside Alembic's migrations and fail with tracebacks such as
"duplicate column name: step" (reproduced with two ``medxlate train`` started together).
:func:`open_client` therefore holds an exclusive file lock beside the database (``mlflow.db.lock``,
see :mod:`medxlate.io.lock`) while the client is created and the store initialised: the first
process creates the schema, the others wait for it and then find it up to date. Other backends
(server URIs, file stores) are opened as they are.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["open_client", "sqlite_path"]

_SQLITE = "sqlite:///"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (``None`` for other URIs and in-memory stores).

    Args:
        uri: Tracking URI, e.g. ``sqlite:///mlflow.db`` (relative) or ``sqlite:////tmp/mlflow.db``.

    Returns:
        The database path, or ``None``.
    """
    if not uri.startswith(_SQLITE):
        return None
    path = uri[len(_SQLITE) :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def open_client(tracking_uri: str | None) -> Any:
    """Set the tracking URI (when given) and return an ``MlflowClient`` whose store is initialised.

    For a SQLite store the creation of the client and of the schema happens under an exclusive lock
    on ``<database>.lock``, so concurrent first runs never race in the schema migration.

    Args:
        tracking_uri: Explicit tracking URI; ``None`` keeps MLflow's resolution (environment, default).

    Returns:
        An ``mlflow.tracking.MlflowClient``.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    from medxlate.io.lock import file_lock

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    database = sqlite_path(str(mlflow.get_tracking_uri()))
    if database is None:
        return MlflowClient()
    lock = database.with_name(database.name + ".lock")
    try:
        with file_lock(lock, "MLflow store initialisation", wait=True, what=f"MLflow store {database}"):
            client = MlflowClient()
            client.search_experiments(max_results=1)  # creates or migrates the schema now, under the lock
            return client
    except PermissionError:  # a read-only store folder: nothing will be created there either
        logger.debug("MLflow store %s: no lock possible (read-only folder); opening it unlocked", database)
        return MlflowClient()
