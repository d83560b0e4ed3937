"""The loss of one step is the mean over its target tokens, however the step is split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from peft import LoraConfig, get_peft_model

from tests.training.torchrun import run_torchrun
from whisper_ja.config import load_config
from whisper_ja.data.collate import IGNORE_INDEX
from whisper_ja.model import tiny_random_whisper
from whisper_ja.model.context import enable_dynamic_context
from whisper_ja.training.settings import TrainConfig
from whisper_ja.training.step import accumulate_gradients, targets_only, token_loss_sum

LABEL_LENGTHS = (3, 14, 5, 9, 2, 17, 6, 11)  # very different lengths: unweighted means differ


def _batch(model, rows: range, seed: int = 0) -> dict[str, torch.Tensor]:
    """Clips ``rows`` of a fixed random set: features, labels of LABEL_LENGTHS, padding."""
    generator = torch.Generator().manual_seed(seed)
    n_mels = model.config.num_mel_bins
    features = torch.randn(len(LABEL_LENGTHS), n_mels, 200, generator=generator)
    tokens = torch.randint(0, 1000, (len(LABEL_LENGTHS), max(LABEL_LENGTHS) + 1),
                           generator=generator)
    picked = list(rows)
    width = max(LABEL_LENGTHS[i] for i in picked)
    labels = torch.full((len(picked), width), IGNORE_INDEX)
    decoder_input = torch.full((len(picked), width), model.config.pad_token_id)
    for row, clip in enumerate(picked):
        n = LABEL_LENGTHS[clip]
        decoder_input[row, :n] = tokens[clip, :n]
        labels[row, :n] = tokens[clip, 1:n + 1]
    return {"input_features": features[picked], "lengths": torch.full((len(picked),), 200),
            "decoder_input_ids": decoder_input, "labels": labels}


def _config(tmp_path: Path) -> TrainConfig:
    return load_config(TrainConfig, overrides=[
        f"out={tmp_path}", "specaugment.enabled=false", "data.train=[unused.jsonl]"])


def _gradients(model, batches, config) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = accumulate_gradients(model, batches, config, Accelerator(cpu=True), step=0)
    return loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _model():
    """A fresh tiny random Whisper (not the shared fixture: this one is changed)."""
    model = tiny_random_whisper(seed=0).model
    enable_dynamic_context(model)  # 200-frame clips, as training feeds them
    model.config.dropout = 0.0
    return model


def test_one_batch_of_8_and_two_accumulated_batches_of_4_give_the_same_gradients(tmp_path):
    model = _model()
    config = _config(tmp_path)
    whole_loss, whole = _gradients(model, [_batch(model, range(8))], config)
    split_loss, split = _gradients(model, halves(model), config)
    assert whole_loss == pytest.approx(split_loss, rel=1e-5)
    assert whole.keys() == split.keys() and len(whole) > 20
    for name, grad in whole.items():
        torch.testing.assert_close(split[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    # The mean of per-batch means (the old rule) gives other gradients: the test can tell.
    model.zero_grad(set_to_none=True)
    for half in halves(model):
        output = model(input_features=half["input_features"],
                       decoder_input_ids=half["decoder_input_ids"])
        tokens = (half["labels"] != IGNORE_INDEX).sum()
        (token_loss_sum(output.logits, half["labels"]) / tokens / 2).backward()
    old_rule = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    difference = max(float((old_rule[n] - g).norm() / g.norm().clamp_min(1e-12))
                     for n, g in whole.items())
    assert difference > 1e-2


def halves(model) -> list[dict[str, torch.Tensor]]:
    return [_batch(model, range(4)), _batch(model, range(4, 8))]


@pytest.mark.parametrize("lora", [False, True])
def test_logits_of_target_positions_only_give_the_full_gradients(tmp_path, lora):
    model = _model()
    if lora:
        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "fc1"]))
    batch = _batch(model, range(8))
    loss, grads = _gradients(model, [batch], _config(tmp_path))
    model.zero_grad(set_to_none=True)  # the reference: logits at every position, padding too
    output = model(input_features=batch["input_features"],
                   decoder_input_ids=batch["decoder_input_ids"])
    assert output.logits.shape[:2] == batch["labels"].shape  # the hook is gone afterwards
    tokens = int((batch["labels"] != IGNORE_INDEX).sum())
    reference_loss = token_loss_sum(output.logits, batch["labels"]) / tokens
    reference_loss.backward()
    assert loss == pytest.approx(float(reference_loss), rel=1e-5)
    assert len(grads) > 4
    for name, param in model.named_parameters():
        if param.grad is not None:
            torch.testing.assert_close(grads[name], param.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_targets_only_projects_the_marked_positions():
    model = _model()
    batch = _batch(model, range(3))
    targets = batch["labels"] != IGNORE_INDEX
    with torch.no_grad():
        full = model(input_features=batch["input_features"],
                     decoder_input_ids=batch["decoder_input_ids"]).logits
        with targets_only(model, targets):
            cut = model(input_features=batch["input_features"],
                        decoder_input_ids=batch["decoder_input_ids"]).logits
    assert cut.shape == (int(targets.sum()), full.shape[-1])
    torch.testing.assert_close(cut, full[targets])


def test_token_loss_sum_ignores_padding_and_matches_cross_entropy():
    logits = torch.randn(2, 3, 7)
    labels = torch.tensor([[1, 2, IGNORE_INDEX], [4, IGNORE_INDEX, IGNORE_INDEX]])
    expected = -(logits.log_softmax(-1)[0, 0, 1] + logits.log_softmax(-1)[0, 1, 2]
                 + logits.log_softmax(-1)[1, 0, 4])
    torch.testing.assert_close(token_loss_sum(logits, labels), expected)


WORKER = """
import sys, torch
from accelerate import Accelerator
from tests.training.test_step import _batch, _config
from whisper_ja.training.processes import end_processes
from whisper_ja.training.step import accumulate_gradients
from pathlib import Path
accelerator = Accelerator(cpu=True)
from tests.training.test_step import _model
model = _model()
wrapped = accelerator.prepare(model)
rank, world = accelerator.process_index, accelerator.num_processes
rows = range(rank * 4, rank * 4 + 4) if world == 2 else range(8)
loss = accumulate_gradients(wrapped, [_batch(model, rows)], _config(Path(sys.argv[1])),
                            accelerator, step=0)
if accelerator.is_main_process:
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    torch.save({"loss": loss, "grads": grads}, Path(sys.argv[1]) / f"grads_{world}.pt")
# Both ranks leave together, the process group closed once gloo's threads are done: a rank
# that exits while they run is killed by std::terminate (seen as a flaky SIGABRT), and one that
# destroys the group while they drop their work can deadlock (see end_processes).
end_processes(accelerator)
"""


@pytest.mark.slow
def test_two_processes_give_the_gradients_of_one(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    for world in (1, 2):
        run_torchrun(world, [str(script), str(tmp_path)])
    one, two = (torch.load(tmp_path / f"grads_{w}.pt") for w in (1, 2))
    assert one["loss"] == pytest.approx(two["loss"], rel=1e-5)
    for name, grad in one["grads"].items():
        torch.testing.assert_close(two["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)
