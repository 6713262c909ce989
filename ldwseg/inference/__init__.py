"""Running trained models outside training: tiled inference for huge images (with the energy-attention
gates of the whole image) and ONNX export checked with onnxruntime."""
