"""Small language models, built on the workstation: source (a transformers folder or a GGUF
file), decoder (one ONNX graph for prefill and decode), and the export pipeline through the
shared gate and repair (weight-only int8 and int4 variants, judged by perplexity)."""
