"""Real pretrained models materialised offline as ordinary Hugging Face checkpoint directories."""
