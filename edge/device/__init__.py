"""The device half: what runs on the board with numpy and one runtime.

model (``edge.load``), runtime/ (one backend per runtime), profiler/ (``edge profile``),
meters/ (energy), thermal, detect (which target is this machine), inputs and text (raw
inputs for ``edge run``). Nothing here imports ``edge.build``, torch or onnx.
"""
