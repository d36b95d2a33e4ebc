"""TFLite artifacts, built on the workstation: convert (litert-torch and the flatbuffer),
build (the TFLite variants through the shared gate and repair), onnx_torch (ONNX sources)."""
