"""The hook specifications of TruthNet's plugin system (pluggy project name ``truthnet``).

Every hook is a *registration callback*: TruthNet calls it once, with a ``register`` function,
and the plugin calls ``register(name, factory, description=...)`` for each thing it provides.
Nothing is built at registration time: a factory runs only when its name is asked for, so an
installed plugin costs nothing until it is used.

A plugin is any module or object with functions decorated by :data:`hookimpl`; a pip package
exposes it through the entry-point group ``truthnet``::

    [project.entry-points.truthnet]
    my_plugin = "my_package.truthnet_plugin"

See ``docs/plugins.md`` and ``examples/truthnet-plugin-example`` for the contracts in full.
"""

from __future__ import annotations

import pluggy

from .contracts import Register

PROJECT = "truthnet"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "hookspec", "hookimpl", "Register"]


@hookspec
def truthnet_register_samplers(register: Register) -> None:
    """Register frame samplers.

    ``factory(**options)`` returns a :class:`~truthnet.plugins.contracts.Sampler`:
    ``sample(info: VideoInfo, num_frames: int) -> list[int]``, sorted, unique frame indices in
    ``[0, info.frame_count)``.  Returning fewer than ``num_frames`` indices is allowed (short
    videos); the pipeline pads the sequence with black frames, as the paper does.
    """


@hookspec
def truthnet_register_face_detectors(register: Register) -> None:
    """Register face detectors.

    ``factory(**options)`` returns a :class:`~truthnet.plugins.contracts.FaceDetector`,
    ``detect(frames) -> list[list[Face]]``: for a
    batch of RGB uint8 frames, the faces found in each (:class:`truthnet.faces.Face`: box
    ``(x, y, w, h)`` in pixels, confidence, optional keypoints).  The attribute
    ``finds_faces = False`` marks a detector that does not look for faces (``none``): the
    pipeline then uses whole frames and reports faces as not applicable.  A factory (class)
    with ``runs_in_decoder = True`` is cheap to create and needs no TensorFlow: the scanner
    then detects and crops in its decode worker processes, in parallel (``haar``, ``none``).
    ``runs_in_decoder`` may also be a function ``(options, device) -> bool`` of the detector's
    options and the classifier's device (``mtcnn``: on OpenVINO on the CPU).
    """


@hookspec
def truthnet_register_backbones(register: Register) -> None:
    """Register frame backbones (CNNs that turn a face crop into an embedding).

    ``factory(**options)`` returns a :class:`truthnet.backbones.Backbone`: the input size it
    was designed for, ``feature_dim``, pooling, its own input preprocessing, and
    ``builder(input_size, weights)`` returning a Keras model from ``(H, W, 3)`` to a feature map
    ``(h, w, feature_dim)`` (checked when built).  The factory must be cheap: TruthNet calls it
    before it loads a saved model that uses the backbone, so a backbone with its own Keras
    layers imports them there (each registered with ``keras.saving.register_keras_serializable``)
    and the model loads in safe mode.
    """


@hookspec
def truthnet_register_job_kinds(register: Register) -> None:
    """Register kinds of queued job beyond ``scan``, ``train`` and ``evaluate``.

    Here the "factory" is the work itself: ``run(job, store, report, out_dir) -> dict``, called
    in the job's own process by ``truthnet jobs run`` (``job``: the queued row, its ``options``
    included; ``report(stage, done, total, message)``; the returned dict's ``message`` is the
    job's one-line result).  Cancellation arrives as ``KeyboardInterrupt``.  Such jobs are
    queued through the API (``JobQueue.add(kind, target, options=...)``); the target is not
    checked as a scan's or a dataset's would be.  The runner and its job processes find the
    kind only through an installed plugin (an entry point), never one registered at run time.
    """


@hookspec
def truthnet_register_dataset_layouts(register: Register) -> None:
    """Register dataset layouts.

    ``factory(**options)`` returns a :class:`~truthnet.plugins.contracts.DatasetLayout`:
    ``detect(root) -> bool`` and ``read(root) -> list[ManifestRow]`` (``docs/datasets.md``).
    """


