"""Exporting a learned policy to run outside policyfit (ONNX)."""
