"""One reader module per corpus layout, each turning a corpus into candidate utterances.

``jsut``, ``common_voice``, ``fleurs``, ``reazonspeech``, ``folder`` and ``table`` each provide
``read(context) -> Iterator[Candidate]`` (see :mod:`whisper_ja.data.corpora.base`); the checks
and the manifest are :mod:`whisper_ja.data.prepare`'s job.
"""
