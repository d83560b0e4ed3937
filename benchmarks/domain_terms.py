"""Domain terms with and without prompt biasing, side by side (SYNTHETIC speech).

Synthesizes the built-in medical and technical sentences (``whisper_ja.data.domain``) with the
offline
voices, then runs ``whisper-ja evaluate`` twice on the same model: plain, and with the term list
given to the decoder as Whisper's previous-text prompt (``--prompt-terms``). Prints CER with its
95% interval, term recall (written form) and reading recall (heard but maybe written otherwise),
and the paired-bootstrap CER difference prompt - plain.

    .venv/bin/python benchmarks/domain_terms.py --out runs/domain [--adapter runs/sweep/rank-32]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/domain"))
    parser.add_argument("--model", default="openai/whisper-base")
    parser.add_argument("--adapter", type=Path, default=None)
    parser.add_argument("--voices", nargs="+", default=None,
                        help="voice specs (default: whisper_ja.data.domain.DOMAIN_VOICES)")
    parser.add_argument("--limit", type=int, default=0, help="first N utterances (0 = all)")
    parser.add_argument("--context", default="auto", choices=("auto", "dynamic", "full"),
                        help="encoder input (evaluate's --context)")
    parser.add_argument("--bf16", action="store_true", help="decode under bf16 autocast")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    from whisper_ja.data.domain import DOMAIN_VOICES, synthesize_domain_set
    from whisper_ja.evaluation.runner import EvaluateConfig, evaluate

    args = parse_args(argv)
    manifest = args.out / "domain_set" / "manifest.jsonl"
    if not manifest.is_file():
        synthesize_domain_set(manifest.parent, voices=args.voices or DOMAIN_VOICES)
    terms = manifest.parent / "terms.txt"
    tag = ("adapted" if args.adapter else "untouched") + ("-bf16" if args.bf16 else "")
    common = {"manifest": manifest, "model": args.model, "adapter": args.adapter,
              "terms": terms, "limit": args.limit, "context": args.context, "bf16": args.bf16}
    plain = evaluate(EvaluateConfig(out=args.out / f"{tag}-plain", **common))
    prompt = evaluate(EvaluateConfig(out=args.out / f"{tag}-prompt", prompt_terms=terms,
                                     compare=args.out / f"{tag}-plain", **common))
    rows = {}
    for name, report in (("plain", plain.data), ("prompt", prompt.data)):
        cer, recall = report["overall"]["cer"], report["term_recall"]
        rows[name] = {"cer": cer["rate"], "cer_low": cer["low"], "cer_high": cer["high"],
                      "term_recall": recall["recall"], "reading_recall": recall["reading_recall"],
                      "occurrences": recall["occurrences"],
                      "looped": report["overall"].get("looped")}
    delta = prompt.data["comparison"]["metrics"]["cer"]
    summary = {"model": args.model, "adapter": str(args.adapter or ""), "synthetic": True,
               "utterances": plain.data["overall"]["utterances"], "runs": rows,
               "cer_delta_prompt_minus_plain": {k: delta[k] for k in ("delta", "low", "high")}}
    (args.out / f"{tag}-summary.json").write_text(json.dumps(summary, indent=2),
                                                  encoding="utf-8")
    print(f"domain terms, {tag} model, {summary['utterances']} utterances (SYNTHETIC speech)")
    print("| decoding | CER % [95% CI] | term recall | reading recall | looped |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {100 * r['cer']:.2f} [{100 * r['cer_low']:.2f}, "
              f"{100 * r['cer_high']:.2f}] | {r['term_recall']:.3f} | {r['reading_recall']:.3f} "
              f"| {r['looped']} |")
    print(f"CER prompt - plain: {100 * delta['delta']:+.2f} points "
          f"[{100 * delta['low']:+.2f}, {100 * delta['high']:+.2f}]")


if __name__ == "__main__":
    main()
