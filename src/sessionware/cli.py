"""The ``sessionware`` command line."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

from .errors import MissingExtraError, SessionwareError

try:
    import typer
except ImportError:  # pragma: no cover - exercised by the missing-extra test in a subprocess
    typer = None  # type: ignore[assignment]


def _app() -> typer.Typer:
    app = typer.Typer(help="Durable, concurrency-safe sessions for chat bots and AI agents.", add_completion=False)

    @app.callback()
    def root() -> None:
        """sessionware's command line."""

    @app.command()
    def demo(
        store: Annotated[
            str, typer.Option("--store", envvar="SESSIONWARE_STORE", help="Store URL.")
        ] = "sqlite:///sessionware-demo.db",
        burst: Annotated[int, typer.Option(help="Concurrent 'like' taps in the demo.")] = 50,
    ) -> None:
        """Run a scripted multi-user conversation through the router and show what was stored."""
        from .demo import run_demo

        asyncio.run(run_demo(store, burst=burst))

    return app


def main() -> None:
    """Entry point of the ``sessionware`` console script."""
    if typer is None:
        print("sessionware: the command line needs the cli extra: pip install 'sessionware[cli]'", file=sys.stderr)
        raise SystemExit(2)
    try:
        _app()(standalone_mode=True)
    except (SessionwareError, MissingExtraError) as exc:
        print(f"sessionware: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
