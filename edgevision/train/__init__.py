"""The offline trainer: labelled photos in, an evaluated, versioned Custom Vision-style model out.

Transfer learning on the bundled MobileNetV2 backbone: cached backbone features, a linear head fitted with
L-BFGS, stratified k-fold evaluation, export as one ONNX file the scoring service serves unchanged.
"""
