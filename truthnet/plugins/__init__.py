"""The plugin manager: registries of samplers, face detectors, backbones and dataset layouts.

Built-ins register through the same hooks as third-party packages.  Third-party plugins load
once, lazily (on the first lookup), from the entry-point group ``truthnet``.  Environment:

* ``TRUTHNET_LOAD_PLUGINS``: comma-separated entry-point names to load; empty loads none
  (built-ins only).  Unset loads all.
* ``TRUTHNET_BLOCK_PLUGINS``: comma-separated entry-point names never to load.

A plugin that fails to import, or that implements a hook TruthNet does not define (a
misspelled ``truthnet_register_*``), does not break TruthNet: it is left out, and its error is
kept and shown by ``truthnet plugins`` and in "unknown name" errors.  The same mistakes in a
plugin registered at run time (:func:`register_plugin`) raise :class:`PluginError`.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable

import pluggy

from ..errors import ConfigError, PluginError, TruthnetError, UnknownNameError
from . import hookspecs
from .hookspecs import PROJECT, hookimpl

__all__ = [
    "hookimpl",
    "register_plugin",
    "check_worker_safe",
    "pipeline_plugins",
    "require_pipeline_plugins",
    "parse_options",
    "validate_options",
    "factory_options",
    "configure_parts",
    "KINDS",
    "Entry",
    "get_plugin_manager",
    "get_entry",
    "list_names",
    "list_entries",
    "plugin_load_errors",
    "create_sampler",
    "create_face_detector",
    "create_backbone",
    "create_dataset_layout",
    "list_samplers",
    "list_face_detectors",
    "list_backbones",
    "list_dataset_layouts",
    "reset",
]

log = logging.getLogger(__name__)

#: kind -> hook name
KINDS: dict[str, str] = {
    "sampler": "truthnet_register_samplers",
    "face_detector": "truthnet_register_face_detectors",
    "backbone": "truthnet_register_backbones",
    "dataset_layout": "truthnet_register_dataset_layouts",
    "job_kind": "truthnet_register_job_kinds",
}

BUILTIN_SOURCE = "truthnet (built-in)"
_BUILTIN_MODULES = (
    "truthnet.plugins.samplers",
    "truthnet.plugins.face_detectors",
    "truthnet.plugins.backbones",
    "truthnet.plugins.datasets",
)


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    factory: Callable[..., Any]
    description: str
    source: str  # distribution that provides it, e.g. "truthnet (built-in)" or "my-plugin 0.1"
    distribution: str | None = None  # pip name of the provider; None for run-time registrations
    version: str | None = None
    runtime: bool = False  # registered with register_plugin(): unknown to other processes


@dataclass(frozen=True)
class _Provider:
    source: str
    distribution: str | None = None
    version: str | None = None
    runtime: bool = False


class _State:
    def __init__(self) -> None:
        self.pm: pluggy.PluginManager | None = None
        self.registries: dict[str, dict[str, Entry]] | None = None
        self.load_errors: dict[str, str] = {}
        self.providers: dict[int, _Provider] = {}
        self.lock = threading.RLock()


_state = _State()


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [x.strip() for x in raw.split(",") if x.strip()]


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    from importlib.metadata import entry_points

    allow = _env_list("TRUTHNET_LOAD_PLUGINS")
    block = set(_env_list("TRUTHNET_BLOCK_PLUGINS") or [])
    for ep in entry_points(group=PROJECT):
        if (allow is not None and ep.name not in allow) or ep.name in block:
            continue
        dist = getattr(ep, "dist", None)
        source = f"{dist.name} {dist.version}" if dist is not None else ep.value
        try:
            plugin = ep.load()
            _register_checked(pm, plugin, f"entrypoint:{ep.name}", source)
        except Exception as exc:  # a broken plugin must not break the tool; we report it instead
            _state.load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
            log.warning("truthnet plugin %r (%s) failed to load: %s", ep.name, source, exc)
            continue
        _state.providers[id(plugin)] = _Provider(
            source, dist.name if dist is not None else None, dist.version if dist is not None else None
        )


def _register_checked(pm: pluggy.PluginManager, plugin: object, name: str | None, source: str) -> None:
    """Register ``plugin``, or leave it out and raise :class:`PluginError` naming the hook when
    it implements one TruthNet does not define (a typo would otherwise be ignored silently) or
    implements one with the wrong arguments."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {source}: {exc}", hint=_HOOKS_HINT) from None
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(plugin)
        raise PluginError(f"plugin {source}: {exc}", hint=_HOOKS_HINT) from None


_HOOKS_HINT = "TruthNet's hooks: " + ", ".join(sorted(KINDS.values()))


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created (and entry points loaded) on first use."""
    with _state.lock:
        if _state.pm is None:
            import importlib

            pm = pluggy.PluginManager(PROJECT)
            pm.add_hookspecs(hookspecs)
            for modname in _BUILTIN_MODULES:
                mod = importlib.import_module(modname)
                _register_checked(pm, mod, modname, BUILTIN_SOURCE)
                _state.providers[id(mod)] = _Provider(BUILTIN_SOURCE, "truthnet", _truthnet_version())
            _load_entry_points(pm)
            _state.pm = pm
        return _state.pm


def _truthnet_version() -> str:
    from .. import __version__

    return __version__


def register_plugin(plugin: object, name: str | None = None, source: str | None = None) -> None:
    """Register a plugin object at run time (handy in notebooks and tests).

    What it provides exists in this process only, and decode workers are separate processes:
    with ``isolation="auto"`` (the default) a scan that uses such a part decodes in threads of
    this process instead (no per-file time limit); ``isolation="process"`` refuses it (see
    :func:`check_worker_safe`).  Package it with an entry point to have it in the workers too.
    Raises :class:`PluginError` for a hook TruthNet does not define.
    """
    with _state.lock:
        pm = get_plugin_manager()
        src = source or getattr(plugin, "__name__", None) or type(plugin).__name__
        _register_checked(pm, plugin, name, src)
        _state.providers[id(plugin)] = _Provider(src, runtime=True)
        _state.registries = None


def reset() -> None:
    """Forget everything loaded; the next lookup reloads built-ins and entry points."""
    with _state.lock:
        _state.pm = None
        _state.registries = None
        _state.load_errors = {}
        _state.providers = {}


def _build_registries() -> dict[str, dict[str, Entry]]:
    pm = get_plugin_manager()
    registries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
    for kind, hook_name in KINDS.items():
        hook = getattr(pm.hook, hook_name)
        # Built-ins first, so a third-party plugin cannot silently shadow one (pluggy calls the
        # most recently registered implementation first).
        impls = sorted(hook.get_hookimpls(), key=lambda i: _provider(i).source != BUILTIN_SOURCE)
        for impl in impls:
            provider = _provider(impl)
            source = provider.source

            def register(
                name: str,
                factory: Callable[..., Any],
                description: str = "",
                *,
                _kind: str = kind,
                _source: str = source,
                _provider: _Provider = provider,
            ) -> None:
                if not isinstance(name, str) or not name:
                    raise PluginError(f"{_source}: {_kind} names must be non-empty strings, got {name!r}")
                if not callable(factory):
                    raise PluginError(f"{_source}: the factory for {_kind} {name!r} is not callable")
                existing = registries[_kind].get(name)
                if existing is not None:
                    log.warning(
                        "%s %r from %s ignored: already provided by %s", _kind, name, _source, existing.source
                    )
                    return
                registries[_kind][name] = Entry(
                    _kind, name, factory, (description or "").strip(), _source,
                    _provider.distribution, _provider.version, _provider.runtime,
                )

            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"plugin {source} failed while registering {kind}s: {exc}") from exc
    return registries


def _provider(impl: Any) -> _Provider:
    return _state.providers.get(id(impl.plugin)) or _Provider(impl.plugin_name)


def _registries() -> dict[str, dict[str, Entry]]:
    with _state.lock:
        if _state.registries is None:
            _state.registries = _build_registries()
        return _state.registries


def list_entries(kind: str | None = None) -> list[Entry]:
    kinds = [kind] if kind else list(KINDS)
    regs = _registries()
    return [regs[k][n] for k in kinds for n in sorted(regs[k])]


def list_names(kind: str, pattern: str | None = None) -> list[str]:
    if kind not in KINDS:
        raise UnknownNameError("plugin kind", kind, list(KINDS))
    names = sorted(_registries()[kind])
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def get_entry(kind: str, name: str) -> Entry:
    regs = _registries()
    try:
        return regs[kind][name]
    except KeyError:
        err = UnknownNameError(kind.replace("_", " "), name, list(regs.get(kind, {})))
        if _state.load_errors:  # the name may belong to a plugin that is installed but broken
            err.hint = "plugins that failed to load: " + "; ".join(f"{k}: {v}" for k, v in _state.load_errors.items())
        raise err from None


def plugin_load_errors() -> dict[str, str]:
    get_plugin_manager()
    return dict(_state.load_errors)


def _create(kind: str, name: str, options: dict[str, Any]) -> Any:
    entry = get_entry(kind, name)
    validate_options(kind, name, options)  # a clear error naming the valid options, before the call
    what = f"{kind.replace('_', ' ')} {name!r} ({entry.source})"
    try:
        return entry.factory(**options)
    except TruthnetError:
        raise
    except TypeError as exc:
        raise PluginError(f"{what} rejected its options: {exc}") from exc
    except ValueError as exc:  # a value out of range: the user's to fix, not a crash
        raise ConfigError(f"{what} rejected its options {options}: {exc}") from exc


def create_sampler(name: str, **options: Any) -> Any:
    return _create("sampler", name, options)


def create_face_detector(name: str, **options: Any) -> Any:
    return _create("face_detector", name, options)


def create_backbone(name: str, **options: Any) -> Any:
    return _create("backbone", name, options)


def create_dataset_layout(name: str, **options: Any) -> Any:
    return _create("dataset_layout", name, options)


def list_samplers(pattern: str | None = None) -> list[str]:
    return list_names("sampler", pattern)


def list_face_detectors(pattern: str | None = None) -> list[str]:
    return list_names("face_detector", pattern)


def list_backbones(pattern: str | None = None) -> list[str]:
    return list_names("backbone", pattern)


def list_dataset_layouts(pattern: str | None = None) -> list[str]:
    return list_names("dataset_layout", pattern)


# imported last: they use the registry above
from .options import configure_parts, factory_options, parse_options, validate_options  # noqa: E402
from .provenance import check_worker_safe, pipeline_plugins, require_pipeline_plugins  # noqa: E402
