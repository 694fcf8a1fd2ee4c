"""moto server with in-process fixes for two defects of its SQS (moto == ``MOTO_VERSION``).

1. Cost grows with queue length: ``Queue.attributes`` rebuilds every attribute,
   counting all messages three times with two datetime constructions each, and
   every ``send_message`` (so every S3 notification) and ``receive_message``
   reads it. Fixed by computing attributes lazily, one on access; the SQS clock
   reads ``time.time()``; the server's per-request ``list_of_moto_modules()``
   directory listing is cached.
2. Not thread-safe: receive, delete and visibility changes edit a queue's
   message list without its lock (delete rebuilds the list), so concurrent
   receivers lose and duplicate messages. Fixed by holding the queue's own lock
   (a ``Condition`` over an ``RLock``; long-poll waits release it) around them.

The fixes replace moto internals, so they are written for one moto version:
:data:`FINGERPRINTS` holds a digest of each function they rely on, and
:func:`apply` refuses to run against anything else. Run as
``python -m pixsearch.runtime.moto_fixes -H HOST -p PORT``.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pixsearch.runtime import patching

MOTO_VERSION = "5.2.5"

# pixsearch.runtime.patching.fingerprint() of each moto function the fixes rely on.
FINGERPRINTS = {
    "moto.core.utils:unix_time": "f0576ec9e5f586e5",
    "moto.core.utils:unix_time_millis": "7a37e1337d02962e",
    "moto.backends:list_of_moto_modules": "4f741a10b06500e8",
    "moto.sqs.models:Queue.attributes": "40cb990b121628d5",
    "moto.sqs.models:Queue.add_message": "f27c9231c1f20433",
    "moto.sqs.models:Queue.delete_message": "fa6fd5b9bd2cafb4",
    "moto.sqs.models:Queue.wait_for_messages": "58432562ccf2e13e",
    "moto.sqs.models:SQSBackend.send_message": "bf161af09a9e6b86",
    "moto.sqs.models:SQSBackend.receive_message": "065f3e5e7d214408",
    "moto.sqs.models:SQSBackend.delete_message": "9eb658afdceb6bd9",
    "moto.sqs.models:SQSBackend.change_message_visibility": "f0e9df5f66627114",
    "moto.sqs.models:SQSBackend.purge_queue": "443ea1ae7b15230c",
}


def mismatches() -> list[str]:
    """The patched functions whose installed source differs from what the fixes expect."""
    return patching.mismatches(FINGERPRINTS)


class _LazyAttributes(Mapping[str, Any]):
    """``Queue.attributes`` computed one attribute at a time, on access."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def _names(self) -> list[str]:
        queue = self._queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        if queue.policy:
            names.append("Policy")
        if queue.redrive_policy:
            names.append("RedrivePolicy")
        return list(dict.fromkeys(names))

    def __getitem__(self, name: str) -> Any:
        from moto.core.utils import camelcase_to_underscores

        if name not in self._names():
            raise KeyError(name)
        queue = self._queue
        if name == "Policy" and queue.policy:
            return queue.policy
        if name == "RedrivePolicy" and queue.redrive_policy:
            return json.dumps(queue.redrive_policy)
        value = getattr(queue, camelcase_to_underscores(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


def _unix_time(dt: Any = None) -> float:
    return time.time() if dt is None else _ORIGINAL_UNIX_TIME(dt)


def _unix_time_millis(dt: Any = None) -> float:
    return _unix_time(dt) * 1000.0


def _holding_queue_lock(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        with self.get_queue(queue_name)._messages_lock:
            return method(self, queue_name, *args, **kwargs)

    return locked


_ORIGINAL_UNIX_TIME: Callable[..., float]


def apply() -> None:
    """Install the fixes into the imported moto; raises if moto is not the expected one."""
    global _ORIGINAL_UNIX_TIME
    import moto
    from moto import backends
    from moto.core import utils
    from moto.sqs import models

    changed = mismatches()
    if moto.__version__ != MOTO_VERSION or changed:
        raise RuntimeError(
            f"pixsearch's moto fixes are written for moto {MOTO_VERSION}, found "
            f"{moto.__version__} (changed: {', '.join(changed) or 'none'}); install "
            f"moto[server]=={MOTO_VERSION} or set PIXSEARCH_LOCAL_BACKEND=ministack"
        )
    _ORIGINAL_UNIX_TIME = utils.unix_time
    models.unix_time = _unix_time
    models.unix_time_millis = _unix_time_millis
    list_modules = backends.list_of_moto_modules
    backends.list_of_moto_modules = functools.cache(lambda: tuple(list_modules()))
    models.Queue.attributes = property(_LazyAttributes)
    backend = models.SQSBackend
    for name in (
        "receive_message",
        "delete_message",
        "change_message_visibility",
        "purge_queue",
    ):
        setattr(backend, name, _holding_queue_lock(getattr(backend, name)))


def main(argv: list[str] | None = None) -> None:
    apply()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
