"""Device selection for TensorFlow in this process (``--device cpu|gpu[:N]``)."""

from __future__ import annotations

from .errors import ConfigError


def parse_device(device: str) -> tuple[str, int | None]:
    """``"cpu"`` -> ("cpu", None); ``"gpu"``/``"gpu:N"`` -> ("gpu", N); anything else: ConfigError."""
    d = device.strip().lower()
    if d == "cpu":
        return "cpu", None
    if d == "gpu" or d.startswith("gpu:"):
        idx = d.partition(":")[2] or "0"
        if idx.isdigit():
            return "gpu", int(idx)
    raise ConfigError(f"device must be cpu or gpu:N (N = 0, 1, ...; gpu is gpu:0), got {device!r}")


def device_name(device: str) -> str:
    """The normalised name of a device: ``"cpu"`` or ``"gpu:N"`` (``"gpu"`` is ``"gpu:0"``)."""
    kind, idx = parse_device(str(device))
    return "cpu" if kind == "cpu" else f"gpu:{idx}"


#: the device this process chose (``"cpu"`` or ``"gpu:N"``); TensorFlow cannot switch later
_chosen: str | None = None


def use_device(device: str) -> None:
    """Restrict TensorFlow in this process to one device: "cpu" hides the GPUs, "gpu:N" keeps
    only GPU N.  Chosen once per process: asking again for the same device is a no-op, asking
    for another is a :class:`ConfigError` (TensorFlow fixes its devices when it first uses
    them; a second device needs a second process, e.g. a job per device)."""
    global _chosen
    kind, idx = parse_device(device)
    name = device_name(device)
    if _chosen is not None:
        if _chosen != name:
            raise ConfigError(f"this process already runs TensorFlow on {_chosen}; it cannot switch to {name}",
                              hint="use one device per process (truthnet jobs queue a job per device)")
        return
    from ._lazy import import_tensorflow

    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if kind == "gpu" and idx >= len(gpus):
        raise ConfigError(f"device {device!r} not found; TensorFlow sees {len(gpus)} GPU(s)")
    try:
        tf.config.set_visible_devices([] if kind == "cpu" else [gpus[idx]], "GPU")
    except RuntimeError as exc:  # TensorFlow already initialised its devices in this process
        raise ConfigError(f"cannot switch TensorFlow to {name}: it has already started on its default "
                          f"devices in this process ({exc})",
                          hint="choose the device before any model is loaded, or use another process") from None
    _chosen = name
