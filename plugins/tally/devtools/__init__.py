"""Development tools, apart from the product: the benchmark (`tally bench`), its baselines,
the sample-day generator (`tally generate`, `tally demo`) and the sample writers it uses.

Nothing on the daily path (the DAGs, pipeline, loading, transform, gate, publish) imports
this package; the CLI imports it only inside the commands that need it. tests/test_layout.py
keeps it so.
"""
