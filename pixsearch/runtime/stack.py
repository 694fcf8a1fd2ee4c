"""``pixsearch up``: the embedded local stack, in the foreground until Ctrl-C.

moto server (unless an external endpoint is given) -> topology -> restored data
-> notifications -> dispatcher -> search API -> web app. Shutdown runs in the
reverse order and leaves no child process behind.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixsearch import topology
from pixsearch.config import Settings
from pixsearch.runtime.dispatcher import Dispatcher, Handler, available_handlers
from pixsearch.runtime.moto_server import LOCAL_CREDENTIALS, MotoServer
from pixsearch.runtime.persistence import (
    BucketMirror,
    restore_pending_messages,
    save_pending_messages,
)
from pixsearch.storage import ObjectStore, client

log = logging.getLogger(__name__)

STACK_FILE = "stack.json"
WEBAPP = Path(__file__).resolve().parents[2] / "webapp" / "app.py"


@dataclass(frozen=True)
class StackOptions:
    endpoint_url: str | None = None
    api: bool = True
    webapp: bool = True
    persist: bool = True
    sync_interval_s: float = 5.0
    stages: tuple[str, ...] | None = None


def stack_file(settings: Settings) -> Path:
    return Path(settings.data_dir).expanduser() / STACK_FILE


def use_running_stack(settings: Settings) -> str | None:
    """Point boto3 at the stack ``pixsearch up`` runs, unless an endpoint is already set.

    Lets ``pixsearch status`` and friends work in a second terminal with no setup.
    """
    if any(os.environ.get(v) for v in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")):
        return None
    path = stack_file(settings)
    if not path.exists():
        return None
    endpoint = json.loads(path.read_text()).get("endpoint_url")
    if endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        for name, value in LOCAL_CREDENTIALS.items():
            os.environ.setdefault(name, value)
        client.cache_clear()
    return endpoint


class LocalStack:
    def __init__(self, settings: Settings, options: StackOptions) -> None:
        self.settings = settings
        self.options = options
        self.data_dir = Path(settings.data_dir).expanduser()
        self.endpoints: dict[str, str] = {}
        self.handlers = self._handlers()
        self._stop = threading.Event()

    def run(self) -> None:
        """Start everything, print the endpoints, wait for Ctrl-C / SIGTERM, stop cleanly."""
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signal_number, lambda *_: self._stop.set())
        with ExitStack() as cleanup:
            self._start(cleanup)
            if self._stop.is_set():
                return
            self._print_endpoints()
            pause = self.options.sync_interval_s
            while not self._stop.wait(pause):
                started = time.monotonic()
                self._sync()
                # A big bucket takes long to list: never spend more than a third of the time on it.
                pause = max(self.options.sync_interval_s, 2 * (time.monotonic() - started))
            print("\nshutting down…", flush=True)

    def _start(self, cleanup: ExitStack) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        endpoint = self.options.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint is None:
            moto = MotoServer(
                self.settings.moto_host,
                self.settings.moto_port,
                log_path=self.data_dir / "moto.log",
            ).start()
            cleanup.callback(moto.stop)
            endpoint = moto.endpoint_url
            for name, value in LOCAL_CREDENTIALS.items():
                os.environ.setdefault(name, value)
            self.mirror_enabled = self.options.persist
        else:
            self.mirror_enabled = False
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        client.cache_clear()
        self.endpoints["object store"] = endpoint

        s3, sqs = client("s3", self.settings.region), client("sqs", self.settings.region)
        self.queue_urls = topology.ensure(
            s3,
            sqs,
            self.settings,
            visibility_timeout_s=self.settings.local_visibility_timeout_s,
            notifications=False,
        )
        self.store = ObjectStore(self.settings.bucket, s3)
        if self.mirror_enabled:
            self.mirror = BucketMirror(self.store, self.data_dir)
            restored = self.mirror.restore()
            if restored:
                print(f"restored {restored} objects from {self.data_dir}", flush=True)
        topology.attach_notifications(s3, sqs, self.settings, self.queue_urls)
        if self.mirror_enabled:
            resent = restore_pending_messages(sqs, self._all_queues(), self._pending_path)
            if resent:
                print(f"re-queued {resent} pending messages", flush=True)
            cleanup.callback(self._save)

        self.dispatcher = Dispatcher(self.settings, self.queue_urls, self.handlers)
        self.dispatcher.start()
        cleanup.callback(self.dispatcher.stop)

        stack_file(self.settings).write_text(json.dumps({"endpoint_url": endpoint}))
        cleanup.callback(stack_file(self.settings).unlink, missing_ok=True)

        if self.options.api:
            self._start_api(cleanup)
        if self.options.webapp:
            self._start_webapp(cleanup)

    def _handlers(self) -> dict[str, Handler]:
        handlers = available_handlers()
        if self.options.stages is None:
            return handlers
        unknown = set(self.options.stages) - {spec.name for spec in topology.STAGES}
        if unknown:
            raise ValueError(
                f"unknown stage(s) {', '.join(sorted(unknown))}; "
                f"stages are {', '.join(spec.name for spec in topology.STAGES)}"
            )
        return {name: handlers[name] for name in self.options.stages if name in handlers}

    @property
    def _pending_path(self) -> Path:
        return self.data_dir / "pending-messages.json"

    def _all_queues(self) -> dict[str, str]:
        urls = {name: pair.queue for name, pair in self.queue_urls.items()}
        urls.update({f"{name}-dlq": pair.dlq for name, pair in self.queue_urls.items()})
        return urls

    def _sync(self) -> None:
        if self.mirror_enabled:
            try:
                self.mirror.sync()
            except Exception:  # noqa: BLE001 - the next sync tries again
                log.warning("could not mirror the bucket", exc_info=True)

    def _save(self) -> None:
        self.mirror.sync()
        pending = save_pending_messages(client("sqs"), self._all_queues(), self._pending_path)
        print(
            f"saved {len(self.mirror.catalogue)} objects and {pending} pending messages "
            f"to {self.data_dir}",
            flush=True,
        )

    def _start_api(self, cleanup: ExitStack) -> None:
        try:
            from pixsearch.search.flask_app import create_flask_app
            from pixsearch.search.wsgi_server import api_server
        except ImportError as error:
            self.endpoints["search API"] = f"absent ({error})"
            return

        server = api_server(create_flask_app(), self.settings).start()
        cleanup.callback(server.stop)
        self.endpoints["search API"] = f"http://{self.settings.api_host}:{self.settings.api_port}"

    def _start_webapp(self, cleanup: ExitStack) -> None:
        if not WEBAPP.exists():
            self.endpoints["web app"] = f"absent ({WEBAPP} does not exist)"
            return
        env = {
            **os.environ,
            "PIXSEARCH_API_URL": self.endpoints.get("search API", ""),
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(WEBAPP),
                "--server.headless=true",
                "--client.toolbarMode=minimal",
                f"--server.address={self.settings.api_host}",
                f"--server.port={self.settings.webapp_port}",
            ],
            env=env,
            stdout=(self.data_dir / "webapp.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        cleanup.callback(_terminate, process)
        self.endpoints["web app"] = f"http://{self.settings.api_host}:{self.settings.webapp_port}"

    def _print_endpoints(self) -> None:
        width = max(len(name) for name in self.endpoints)
        print("pixsearch is up:", flush=True)
        for name, where in self.endpoints.items():
            print(f"  {name:<{width}}  {where}")
        print(f"  {'bucket':<{width}}  s3://{self.settings.bucket}")
        print(f"  {'data':<{width}}  {self.data_dir}")
        handled = ", ".join(self.dispatcher.handlers) or "none"
        print(f"  {'stages':<{width}}  {handled}", end="")
        absent = self.dispatcher.absent_stages
        print(f" (not handled here: {', '.join(absent)})" if absent else "")
        print("Press Ctrl-C to stop.", flush=True)


def _terminate(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
