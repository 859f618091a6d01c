"""Where the networks run: TensorFlow, or OpenVINO on a CPU.

* :mod:`.ovcache`: OpenVINO imported without its telemetry, and networks converted from
  TensorFlow once, cached on disk and checked against TensorFlow's outputs on every load;
* :mod:`.parts`: a model file's frame encoder and temporal head, as a scan runs them.
"""
