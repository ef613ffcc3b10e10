"""Deployment: the detector's dense parts as ONNX graphs (perception.deploy.graphs), ONNX Runtime backends behind
the same Detector interface (perception.deploy.backends), INT8 post-training quantization with a per-graph
sensitivity sweep (perception.deploy.quantize), structured channel pruning (perception.deploy.prune). The kernels
of perception.ops stay outside the graphs."""
