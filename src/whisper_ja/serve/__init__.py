"""Serving: an OpenAI-compatible transcription server, its web page and the error explorer.

- :mod:`whisper_ja.serve.settings`: ``ServeConfig`` / ``ExploreConfig`` (the only defaults);
- :mod:`whisper_ja.serve.engine`: the thin adapter from requests to ``whisper_ja.inference``;
- :mod:`whisper_ja.serve.batcher`: the bounded queue that batches concurrent requests;
- :mod:`whisper_ja.serve.formats`: json, text, srt, vtt and verbose_json bodies;
- :mod:`whisper_ja.serve.errors`: ``whisper_ja.errors`` classes to HTTP codes, OpenAI's shape;
- :mod:`whisper_ja.serve.app` / :mod:`whisper_ja.serve.explore`: the FastAPI routes;
- :mod:`whisper_ja.serve.server`: uvicorn on loopback.
"""
