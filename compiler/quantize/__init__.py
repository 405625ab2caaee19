"""int8 quantization: calibration data, range observers, calibration tables, and the tools that
judge a quantized graph (the quantization doctor, the accuracy-budget search). The graph rewrites
themselves are passes (`passes/calibrate.py`, `passes/quantize_qdq.py`)."""
