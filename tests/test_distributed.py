"""Training on several processes (PyTorch DDP over gloo) on the tiny BERT: two CPU processes train as one."""

import json
import shutil

import numpy as np
from test_training import tiny_config

from callqa.training.model import CallScorer
from callqa.training.trainer import train, train_processes


def test_two_gloo_processes_train_like_one_process_with_the_same_global_batch(tiny_encoder_dir, tiny_data, tmp_path):
    """Each rank takes half of every global batch of 8 and DDP averages the gradients, so after K steps the two-process
    run has the one-process run's validation loss and weights. Not bit-equal: each rank pads its half of the batch to
    its own longest window and the gradients are summed in another order, float32 rounding of ~1e-7 per operation
    that K steps of Adam carry a little further; 1e-4 (relative) is far below what one step moves (checked below).
    The encoder's own dropout is off: random masks drawn per process could never match one process's."""
    encoder = tmp_path / "encoder"
    shutil.copytree(tiny_encoder_dir, encoder)
    settings = json.loads((encoder / "config.json").read_text(encoding="utf-8"))
    settings.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (encoder / "config.json").write_text(json.dumps(settings), encoding="utf-8")
    config = tiny_config(encoder, max_steps=4)
    config = config.model_copy(update={"eval": config.eval.model_copy(update={"every_steps": 2})})
    train_file, validation = tiny_data
    one = train(config, [train_file], tmp_path / "one", validation=[validation], device="cpu", progress=False,
                log=lambda *_: None)
    two = train_processes(2, config, [train_file], tmp_path / "two", validation=[validation], device="cpu",
                          progress=False)

    assert (one.processes, two.processes) == (1, 2)
    assert [h.step for h in two.history] == [h.step for h in one.history] == [2, 4]
    losses_one = np.array([h.val_loss for h in one.history])
    losses_two = np.array([h.val_loss for h in two.history])
    np.testing.assert_allclose(losses_two, losses_one, rtol=1e-4)
    assert abs(losses_one[1] - losses_one[0]) > 100 * 1e-4 * losses_one[0]  # the steps did move the loss

    a = CallScorer.load(tmp_path / "one" / "model").state_dict()
    b = CallScorer.load(tmp_path / "two" / "model").state_dict()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"val loss relative difference {np.abs(losses_two / losses_one - 1).max():.2e}, weights {worst:.2e}")
    assert worst < 1e-4, worst

    # Rank 0 alone wrote the run: one run.json that says two processes, no checkpoint left behind.
    written = json.loads((tmp_path / "two" / "run.json").read_text(encoding="utf-8"))
    assert written["processes"] == 2 and written["n_train"] == one.n_train
    assert not (tmp_path / "two" / "checkpoint").exists()
