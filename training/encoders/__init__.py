"""Audio and text encoders of the CLAP model (Cnn14, HTS-AT, Hugging Face text encoders)."""
