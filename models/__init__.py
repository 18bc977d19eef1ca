"""PyTorch models: RVQ tokenizer, RQ-Transformer, heads, training, export. Needs the train extra."""
