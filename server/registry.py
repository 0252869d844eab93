"""Loaded predictors, by name, swapped atomically when a new version appears on disk.

Layout: ``<root>/<name>/manifest.json`` (+ member weights) is the serving
version of predictor ``<name>``; promotion (``seernet.repository``) replaces that
directory and keeps the old one under ``<root>/.history/<name>/<version>``.
A request takes a reference to the Predictor it uses, so a swap never
disturbs requests already running: they finish on the old version.
"""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from seernet.devices import resolve_device
from seernet.gpu.predictor import GpuPredictor
from seernet.gpu.specs import name_key
from seernet.predictor import MANIFEST, Predictor, PredictorLoadError

from .errors import not_found, unavailable

log = logging.getLogger(__name__)


class PredictorRegistry:
    def __init__(self, root: str | Path, default: str | None = None) -> None:
        self.root = Path(root)
        self.default_name = default
        self._predictors: dict[str, Predictor] = {}
        self._gpu: dict[str, GpuPredictor] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.load_errors: dict[str, str] = {}
        self.on_swap: list = []

    # ------------------------------------------------------------------ loading
    def _directories(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
                      and (p / MANIFEST).exists())

    def refresh(self) -> list[str]:
        """Load predictors that are new or whose manifest version changed; returns what was swapped in."""
        swapped = []
        for directory in self._directories():
            name = directory.name
            try:
                manifest = json.loads((directory / MANIFEST).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                self.load_errors[name] = f"unreadable manifest: {exc}"
                continue
            if manifest.get("kind") == "gpu-kernels":
                swapped += self._refresh_gpu(name, directory, manifest)
                continue
            version = manifest.get("version")
            current = self._predictors.get(name)
            if current is not None and current.version == version:
                continue
            try:
                predictor = Predictor.load(directory)
                predictor.warm()
                predictor.manifest["trained_as"] = predictor.manifest.get("name")
                predictor.manifest["name"] = name  # served under its directory's name
            except PredictorLoadError as exc:
                self.load_errors[name] = str(exc)
                log.error("keeping %s: %s", current.version if current else "nothing", exc)
                continue
            self.swap(name, predictor)
            swapped.append(name)
        return swapped

    def _refresh_gpu(self, name: str, directory: Path, manifest: dict) -> list[str]:
        """GPU kernel cost models are kept apart: they answer requests that name a GPU, never the default."""
        current = self._gpu.get(name)
        if current is not None and current.version == manifest.get("version"):
            return []
        try:
            predictor = GpuPredictor.load(directory)
        except Exception as exc:  # json, safetensors and spec errors each have their own type
            self.load_errors[name] = f"cannot load GPU predictor: {type(exc).__name__}: {exc}"
            return []
        with self._lock:
            self._gpu[name] = predictor
        self.load_errors.pop(name, None)
        log.info("GPU predictor %s: serving version %s for %d known GPUs", name, predictor.version,
                 len(predictor.specs))
        return [name]

    def gpu(self, gpu_name: str | None = None) -> GpuPredictor:
        """The GPU kernel cost model for ``gpu_name``: one calibrated on that GPU (``perfseer fit --gpu-spec``)
        first, then one that knows it by name, then the first by name; UNAVAILABLE when there is none."""
        with self._lock:
            if not self._gpu:
                raise unavailable(f"no GPU predictor in {self.root}; ship one with `perfseer bench gpu --ship "
                                  f"{self.root}/gpu`")
            ordered = [self._gpu[n] for n in sorted(self._gpu)]
        if gpu_name:
            wanted = name_key(gpu_name)
            for known in (lambda p: p.calibration, lambda p: p.specs):  # calibrated on it, then knowing it
                for predictor in ordered:
                    if any(name_key(n) == wanted for n in known(predictor)):
                        return predictor
        return ordered[0]

    def gpu_predictors(self) -> list[GpuPredictor]:
        with self._lock:
            return [self._gpu[n] for n in sorted(self._gpu)]

    def swap(self, name: str, predictor: Predictor) -> None:
        with self._lock:
            old = self._predictors.get(name)
            self._predictors[name] = predictor
        self.load_errors.pop(name, None)
        log.info("predictor %s: serving version %s (was %s)", name, predictor.version, old.version if old else "none")
        for callback in self.on_swap:
            callback(name, predictor)

    def watch(self, interval_s: float = 2.0) -> None:
        """Poll the directory for new versions in a background thread."""
        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.refresh()
                except Exception:  # a bad directory must not kill the watcher
                    log.exception("predictor refresh failed")

        self._watcher = threading.Thread(target=loop, name="predictor-watcher", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ lookup
    @property
    def ready(self) -> bool:
        return bool(self._predictors)

    def names(self) -> list[str]:
        return sorted(self._predictors)

    def all(self) -> list[Predictor]:
        with self._lock:
            return [self._predictors[n] for n in sorted(self._predictors)]

    def default(self) -> Predictor:
        with self._lock:
            if not self._predictors:
                raise unavailable(f"no predictor loaded yet from {self.root}")
            if self.default_name and self.default_name in self._predictors:
                return self._predictors[self.default_name]
            return self._predictors[sorted(self._predictors)[0]]

    def resolve(self, device: str) -> Predictor:
        """By predictor name, exact device key, or device-key prefix (``cpu``, ``gpu``): ``resolve_device``."""
        if not device:
            return self.default()
        with self._lock:
            if not self._predictors:
                raise unavailable(f"no predictor loaded yet from {self.root}")
            name = resolve_device({n: p.device_key for n, p in self._predictors.items()}, device)
            if name is not None:
                return self._predictors[name]
            known = ", ".join(f"{n} ({p.device_key})" for n, p in sorted(self._predictors.items()))
        raise not_found(f"no predictor for device {device!r}; loaded: {known}")

    def history(self, name: str) -> list[str]:
        directory = self.root / ".history" / name
        return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
