"""dnncomp: compress deep neural networks for embedded systems.

The package is split along the device boundary: ``dnncomp.data``,
``dnncomp.preprocess``, ``dnncomp.evaluate``, ``dnncomp.bench`` and
``dnncomp.anatomy`` import only numpy, Pillow and ai-edge-litert, so they run
on a Jetson or a Raspberry Pi. Everything that needs TensorFlow imports it
lazily through :func:`dnncomp.keras_env.import_keras`.
"""

__version__ = "0.1.0"
