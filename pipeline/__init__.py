"""Data stages between the raw crawl and the model: clean, split, segment, features (one module each)."""
