"""Corpora, manifests, leak-free splits, synthetic speech, features and batching."""

from whisper_ja.data.manifest import ManifestError, Utterance, read_manifest, write_manifest

__all__ = ["ManifestError", "Utterance", "read_manifest", "write_manifest"]
