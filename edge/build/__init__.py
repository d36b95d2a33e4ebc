"""The workstation half: everything that turns a model into a bundle.

export (the pipeline), variants (quantize, gate, repair per variant), quantize (ONNX recipes),
gate, repair, validate, data (calibration and evaluation data), onnxfile, speed, and tflite/
(conversion through litert-torch, its variants, and ONNX -> torch). Needs the ``export``
extra (torch, onnx, ...); nothing on the device imports this package.
"""
