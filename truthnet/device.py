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
    raise ConfigError(f"device must be cpu or gpu[:N], got {device!r}")


def use_device(device: str) -> None:
    """Restrict TensorFlow to one device: "cpu" hides the GPUs, "gpu:N" keeps only GPU N."""
    kind, idx = parse_device(device)
    from ._lazy import import_tensorflow

    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if kind == "cpu":
        tf.config.set_visible_devices([], "GPU")
        return
    if idx >= len(gpus):
        raise ConfigError(f"device {device!r} not found; TensorFlow sees {len(gpus)} GPU(s)")
    tf.config.set_visible_devices([gpus[idx]], "GPU")
