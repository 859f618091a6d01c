"""The example backbone's own Keras layer.

Registered with ``keras.saving.register_keras_serializable``, as Keras asks for any custom
layer: a saved model then names it ``truthnet_plugin_example>ChannelGate`` and loads it in
safe mode, as long as this module has been imported.  The backbone factory ``micro_gate``
imports it, and TruthNet calls that factory before it loads a model that uses the backbone.
This module imports Keras (TensorFlow), which is why the plugin's entry-point module does not.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="truthnet_plugin_example")
class ChannelGate(keras.layers.Layer):
    """Squeeze-and-excitation (Hu et al. 2018): each channel of a feature map is scaled by a
    gate in (0, 1) computed from the whole map's channel means."""

    def __init__(self, reduction: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reduction = int(reduction)

    def build(self, input_shape) -> None:
        channels = int(input_shape[-1])
        hidden = max(1, channels // self.reduction)
        self.squeeze = self.add_weight(shape=(channels, hidden), initializer="glorot_uniform", name="squeeze")
        self.excite = self.add_weight(shape=(hidden, channels), initializer="glorot_uniform", name="excite")

    def call(self, x):
        ops = keras.ops
        s = ops.relu(ops.matmul(ops.mean(x, axis=(1, 2)), self.squeeze))
        gate = ops.sigmoid(ops.matmul(s, self.excite))
        return x * ops.expand_dims(ops.expand_dims(gate, 1), 1)

    def get_config(self) -> dict:
        return {**super().get_config(), "reduction": self.reduction}
