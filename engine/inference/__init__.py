"""Inference: model files, tokenizer runtime, step scheduler and every backend."""
