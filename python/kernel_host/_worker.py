"""What the cluster integrations share: a bundle loaded once per worker
process, and errors that say which batch failed."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading

from . import KernelHostError, Pipeline

_lock = threading.Lock()
_loaded: dict = {}


def bundle_bytes(bundle) -> bytes:
    """A bundle given as a path or as its bytes."""
    if isinstance(bundle, (bytes, bytearray, memoryview)):
        return bytes(bundle)
    with open(bundle, "rb") as f:
        return f.read()


def pipeline(data: bytes) -> Pipeline:
    """The bundle `data` as a pipeline, loaded once per process."""
    key = hashlib.sha256(data).hexdigest()
    with _lock:
        found = _loaded.get(key)
        if found is None:
            fd, path = tempfile.mkstemp(suffix=".khb", prefix="kernel-host-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                found = Pipeline.load(path)
            finally:
                os.unlink(path)
            _loaded[key] = found
        return found


def located(error: KernelHostError, where: str) -> KernelHostError:
    """The same typed error, saying where it happened."""
    return type(error)(f"{where}: {error}")
