"""Curation: raw crawl output (or audio you already have) -> clean 44.1 kHz audio, manifests, statistics.

Entry points: ``curation.pipeline.curate`` (Python) and the ``wt5k-curate`` console script (curation/cli.py).
"""
