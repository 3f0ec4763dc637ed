"""The baselines of the paper's Table 2, each on the shared layers (model/layers.py) and with MIMN's forward
signature; model/families.py maps the `model.family` param to them. Equations and choices: docs/baselines.md."""
