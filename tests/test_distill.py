"""`callqa distill`: a student with fewer layers learns its teacher's distributions (tiny BERT, seconds)."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_training import tiny_config
from typer.testing import CliRunner

from callqa.cli import app
from callqa.jsonl import load_calls
from callqa.render import CallEncoder
from callqa.training.data import build_dataset
from callqa.training.distill import distill, pick_layers, student_config, write_student
from callqa.training.export import GateConfig, export_run
from callqa.training.model import CallScorer
from callqa.training.run import RunDir
from callqa.training.trainer import predict_rows, train


def test_the_student_keeps_every_nth_layer_ending_with_the_top_one_or_the_lowest():
    assert pick_layers(12, 4) == [2, 5, 8, 11]
    assert pick_layers(12, 6) == [1, 3, 5, 7, 9, 11]
    assert pick_layers(12, 3) == [3, 7, 11]
    assert pick_layers(12, 12) == list(range(12))
    assert pick_layers(12, 4, "lower") == [0, 1, 2, 3]
    for bad in (0, 13):
        with pytest.raises(ValueError, match="keep 1 to 12"):
            pick_layers(12, bad)


def _kl_to(teacher: dict, probs: dict, heads) -> float:
    return float(np.mean([np.sum(teacher[h] * np.log(teacher[h] / probs[h]), axis=1).mean() for h in heads]))


@pytest.fixture(scope="module")
def teacher(tiny_encoder_dir, tiny_data, tmp_path_factory):
    """A tiny BERT trained long enough to be far from the prior (the session's tiny run barely moved from it)."""
    out = tmp_path_factory.mktemp("teacher") / "run"
    train(tiny_config(tiny_encoder_dir, max_steps=60, epochs=15), [tiny_data[0]], out, validation=[tiny_data[1]],
          progress=False, log=lambda *_: None)
    return out


def test_a_student_learns_its_teacher_from_unlabeled_calls(teacher, tiny_data, tmp_path):
    """alpha 1 on calls without labels: the only signal is the teacher's distributions. The student starts as the
    teacher's top layer with zeroed heads (uniform scores: a truncated tiny BERT alone scores almost as its teacher,
    which would leave nothing to learn) and must end close to its teacher (KL on those calls, ordinal heads)."""
    unlabeled = tmp_path / "unlabeled.jsonl"
    calls = load_calls(tiny_data[0])
    unlabeled.write_text("".join(c.model_copy(update={"labels": {}}).model_dump_json() + "\n" for c in calls),
                         encoding="utf-8")
    out = tmp_path / "student"
    write_student(teacher, [1], out / "student-init")  # distill() starts from an init it finds there
    heads = load_file(str(out / "student-init" / "heads.safetensors"))
    save_file({k: torch.zeros_like(v) for k, v in heads.items()}, str(out / "student-init" / "heads.safetensors"))
    info = distill(teacher, 1, [unlabeled], out, validation=[tiny_data[1]], alpha=1.0, max_steps=80, seed=0,
                   progress=False, log=lambda *_: None)

    assert info.config.distill.layers == [1] and info.config.distill.teacher == str(teacher)
    # The teacher's compute, not its epochs: half the layers, twice the steps the teacher ran (--max-steps wins).
    assert info.config.optim.epochs == 2 * 15 and info.config.optim.max_steps == 80
    ran = RunDir(teacher).info()
    recipe = student_config(ran, teacher, out / "init", [1], 0.7).optim
    assert (recipe.epochs, recipe.max_steps) == (30, 2 * ran.steps)
    # A teacher that early-stopped: the steps it ran set the student's schedule, not the ones it planned.
    stopped = ran.model_copy(update={"steps": 25})
    assert student_config(stopped, teacher, out / "init", [1], 0.7).optim.max_steps == 50
    assert not (out / "student-init").exists()
    student = CallScorer.load(out / "model")
    assert student.encoder.config.num_hidden_layers == 1

    schema = RunDir(teacher).info().label_schema
    encoder = CallEncoder.from_file(teacher / "tokenizer.json", RunDir(teacher).info().render)
    rows = build_dataset(calls, encoder, schema).to_list()
    cpu = torch.device("cpu")
    teacher_p, _ = predict_rows(CallScorer.load(teacher / "model"), rows, schema, encoder.pad_id, 8, cpu)
    after, _ = predict_rows(student, rows, schema, encoder.pad_id, 8, cpu)
    levels = [h.name for h in schema.heads if h.spec.scale]
    uniform = {h: np.full_like(teacher_p[h], 1 / teacher_p[h].shape[1]) for h in levels}
    kl_before, kl_after = _kl_to(teacher_p, uniform, levels), _kl_to(teacher_p, after, levels)
    print(f"KL to the teacher: {kl_before:.4f} → {kl_after:.4f}")
    assert kl_after < 0.2 * kl_before

    # Its export reports the served graph against the teacher's PyTorch fp32 on the same validation calls: the same
    # numbers the teacher's own export measures for its PyTorch model.
    loose = GateConfig(max_nmd_increase=1.0, max_macro_f1_drop=1.0)
    said = []
    bundle = export_run(out, tmp_path / "bundle", version="student", gate=loose, store=False, log=said.append)
    reference = export_run(teacher, tmp_path / "teacher-bundle", version="teacher", gate=loose, store=False,
                           log=lambda *_: None).metrics["validation"]["pytorch"]
    parity = json.loads((tmp_path / "bundle" / "parity.json").read_text())
    compared = parity["served_vs_teacher"]
    assert compared["teacher"] == str(teacher) and compared["within_limits"]
    served = bundle.metrics["validation"][bundle.serve]
    for head in levels:
        assert compared["deltas"][head]["nmd"] == pytest.approx(served[head]["nmd"] - reference[head]["nmd"], abs=1e-6)
    assert [line for line in said if line.startswith(f"{bundle.serve} against the teacher's PyTorch fp32: within")]


def test_distill_command_says_what_is_wrong(tiny_run, tiny_data, tmp_path):
    result = CliRunner().invoke(app, ["distill", "--teacher", str(tiny_run), "--layers", "5", "--data",
                                      str(tiny_data[0]), "--out", str(tmp_path / "s")])
    assert result.exit_code == 1 and "the teacher has 2 layers" in result.output
    assert json.loads((tiny_run / "run.json").read_text(encoding="utf-8"))["steps"] > 0


def test_distillation_is_the_trainer_with_two_hooks_and_a_plain_trainer_refuses_a_students_recipe(tiny_encoder_dir):
    """setfit's shape: DistillationTrainer subclasses Trainer and overrides only where training starts and what it
    trains on; `callqa.train` on a recipe with a distill: section says to distil instead of ignoring the teacher."""
    from callqa.training.config import DistillConfig
    from callqa.training.distill import DistillationTrainer
    from callqa.training.trainer import Trainer

    assert issubclass(DistillationTrainer, Trainer)
    own = {name for name in vars(DistillationTrainer) if not name.startswith("__")}
    assert own == {"distills", "training_rows", "initial_model"}
    student = tiny_config(tiny_encoder_dir, max_steps=2).model_copy(
        update={"distill": DistillConfig(teacher="runs/teacher", alpha=0.5, layers=[0])})
    with pytest.raises(ValueError, match="callqa distill"):
        Trainer(student)
    assert DistillationTrainer(student).config is student
