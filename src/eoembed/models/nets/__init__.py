"""Re-implemented research networks of the model zoo, each checked against an oracle of its original code.

One module per model; each exposes a builder from a config dict, a strict loader under the original
key names and ``forward_tokens`` returning the token grid ``(B, D, h, w)`` plus the original's outputs.
"""
