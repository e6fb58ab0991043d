"""Inference: the one path from pixels to a decision.

`Preprocessor` (file/bytes/array → model input, from the model's PreprocessConfig), `Predictor` (model or
backend + `DecisionPolicy` + `TilingPolicy` → `Prediction` records), the backend seam (`TorchBackend`; an
ONNX Runtime backend fits the same `Backend` contract), record writers, and `RunFolder` / `load_model`
(every run-folder path and the one model loader with its one threshold rule).

Import from the submodules (`flawscope.inference.predictor`, ...); this package imports nothing heavy.
"""
