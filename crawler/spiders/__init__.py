"""The spiders: soundbible, bigsoundbank (sites) and manifest (replays a published CSV)."""
