"""Tools built on the model library: predict (new reviews, attention pages) and the paper's grid (make paper)."""
