"""The resync benchmark: `python -m bench --records N` (README, Benchmark). Dev only: no app, no URL and
no module of production imports it."""
