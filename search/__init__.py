"""Search over a user's sounds with a trained CLAP: an index of embeddings on disk (search/index.py), built from a
manifest or a folder (search/build.py), queried by text, audio or labels (`wt5k-search`, search/cli.py)."""
