"""The runtimes behind the backend protocol (:mod:`whisper_ja.inference.backend`)."""
