"""CLAP training, evaluation and retrieval for WavText5K.

Importing this package (or any model module) loads no weights and touches no network: pretrained
encoders are read only when a model is built from a config that names them.
"""
