"""``pixsearch up``: the embedded local stack, in the foreground until Ctrl-C.

The embedded object store + queues (unless an external endpoint is given) ->
topology -> dispatcher -> search API -> web app. Shutdown runs in the reverse
order and leaves no child process behind.

Data survives a restart because the default backend keeps it on disk itself
(see :mod:`pixsearch.runtime.emulator`); the stack copies nothing. The data
directory of an older release (a bucket mirror of an in-memory moto server) is
imported once at start (:mod:`pixsearch.runtime.legacy_mirror`).
Against an external endpoint (``--endpoint-url`` or any of ``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL_SQS``) nothing is started, only what
is missing is created, and what exists is changed only with ``--reconfigure``.
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
from pixsearch.runtime import legacy_mirror
from pixsearch.runtime.dispatcher import Dispatcher
from pixsearch.runtime.emulator import LOCAL_CREDENTIALS, launch
from pixsearch.runtime.handlers import Handler, available_handlers
from pixsearch.search.arenas import limit_malloc_arenas
from pixsearch.storage import ObjectStore, client

log = logging.getLogger(__name__)

STACK_FILE = "stack.json"
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS")
WEBAPP = Path(__file__).resolve().parents[2] / "webapp" / "app.py"


@dataclass(frozen=True)
class StackOptions:
    endpoint_url: str | None = None
    api: bool = True
    webapp: bool = True
    persist: bool = True
    reconfigure: bool = False
    stages: tuple[str, ...] | None = None


def stack_file(settings: Settings) -> Path:
    return Path(settings.data_dir).expanduser() / STACK_FILE


def use_running_stack(settings: Settings) -> str | None:
    """Point boto3 at the stack ``pixsearch up`` runs, unless an endpoint is already set.

    Lets ``pixsearch status`` and friends work in a second terminal with no setup.
    """
    if any(os.environ.get(v) for v in ENDPOINT_VARIABLES):
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
            self._stop.wait()
            print("\nshutting down…", flush=True)

    def _start(self, cleanup: ExitStack) -> None:
        if self.options.api:  # before the stack's threads: glibc fixes the limit early
            limit_malloc_arenas(self.settings.api_malloc_arenas)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.options.endpoint_url:
            os.environ["AWS_ENDPOINT_URL"] = self.options.endpoint_url
        external = {v: os.environ[v] for v in ENDPOINT_VARIABLES if os.environ.get(v)}
        if external:
            endpoint = external.get("AWS_ENDPOINT_URL")
            for variable, where in external.items():
                self.endpoints[f"object store ({variable})"] = where
        else:
            endpoint = self._start_emulator(cleanup)
        client.cache_clear()

        s3, sqs = client("s3", self.settings.region), client("sqs", self.settings.region)
        mirror = not external and self.options.persist and legacy_mirror.found(self.data_dir)
        if mirror:
            imported_objects = self._import_mirrored_objects(s3, sqs)
        self.queue_urls = topology.ensure(
            s3,
            sqs,
            self.settings,
            visibility_timeout_s=None if external else self.settings.local_visibility_timeout_s,
            reconfigure=self.options.reconfigure or not external,
        )
        if mirror:
            messages = legacy_mirror.import_messages(sqs, self.queue_urls, self.data_dir)
            kept = legacy_mirror.set_aside(self.data_dir)
            print(
                f"imported {imported_objects} objects and {messages} pending messages from the "
                f"data of an older pixsearch release; its files are kept in {kept} (remove "
                "them once you no longer need them)",
                flush=True,
            )

        self.dispatcher = Dispatcher(self.settings, self.queue_urls, self.handlers)
        self.dispatcher.start()
        cleanup.callback(self.dispatcher.stop)
        if "embed" in self.handlers:
            threading.Thread(
                target=_warm_model, args=(self.settings,), name="warm-model", daemon=True
            ).start()

        if endpoint:
            stack_file(self.settings).write_text(json.dumps({"endpoint_url": endpoint}))
            cleanup.callback(stack_file(self.settings).unlink, missing_ok=True)

        if self.options.api:
            self._start_api(cleanup)
        if self.options.webapp:
            self._start_webapp(cleanup)

    def _import_mirrored_objects(self, s3: Any, sqs: Any) -> int:
        """The bucket mirror of an older release goes in before the bucket notifies anyone."""
        topology.ensure(
            s3,
            sqs,
            self.settings,
            visibility_timeout_s=self.settings.local_visibility_timeout_s,
            notifications=False,
        )
        legacy_mirror.silence_bucket(s3, self.settings.bucket)
        print(f"importing the data of an older pixsearch release from {self.data_dir}…", flush=True)
        return legacy_mirror.import_objects(ObjectStore(self.settings.bucket, s3), self.data_dir)

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

    def _start_emulator(self, cleanup: ExitStack) -> str:
        backend = self.settings.local_backend
        emulator = launch(
            backend,
            host=self.settings.moto_host,
            port=self.settings.moto_port,
            data_dir=self.data_dir / backend if self.options.persist else None,
            log_path=self.data_dir / f"{backend}.log",
        )
        started = time.monotonic()
        emulator.start()
        cleanup.callback(emulator.stop)
        for name, value in LOCAL_CREDENTIALS.items():
            os.environ.setdefault(name, value)
        os.environ["AWS_ENDPOINT_URL"] = emulator.endpoint_url
        kept = "data kept on disk" if emulator.persists else "in memory, gone at stop"
        self.endpoints["object store"] = (
            f"{emulator.endpoint_url} ({backend}, {kept}; ready in "
            f"{time.monotonic() - started:.1f} s)"
        )
        return emulator.endpoint_url

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


def _warm_model(settings: Settings) -> None:
    """Load the embed stage's model as the stack starts, not within the first batch:
    importing torch and building the model took 16 s of the first ingest under load
    (the image encoder's ONNX session, built on first use, is built now too)."""
    from pixsearch.inference import ModelUnavailable, load_model

    started = time.monotonic()
    try:
        model = load_model(settings)
        model.load_towers("image")
    except ModelUnavailable as error:
        log.warning("the embed stage cannot load its model yet: %s", error)
        return
    log.info("embed model %s ready in %.1f s", model.tag, time.monotonic() - started)


def _terminate(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
