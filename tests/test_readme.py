"""The README's Python example runs as written: beside ../shared (CI, developers) and on a user's machine, where
the encoder is the one `callqa model pull e5-small` built."""

import re

import pytest

from conftest import REPO


def run_readme_python(monkeypatch) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(REPO)
    exec(compile(code, "README.md", "exec"), {})


def check_output(out: str) -> None:
    assert "[手机号]" in out and "0.6666667" in out
    assert "98.0 [('缺少结束语', '您好，很高兴为您服务')]" in out  # the scorecard line, as the README's comment says
    windows, n_tokens = map(int, out.strip().splitlines()[-1].split())
    assert windows == 1 and 10 < n_tokens < 60  # the two turns, tokenized by the real e5 tokenizer


def test_readme_python_example_runs_beside_shared(shared_encoder, monkeypatch, capsys):
    run_readme_python(monkeypatch)
    check_output(capsys.readouterr().out)


def test_readme_python_example_runs_with_a_pulled_encoder(without_shared, pulled_home, monkeypatch, capsys):
    monkeypatch.setenv("CALLQA_HOME", str(pulled_home))
    run_readme_python(monkeypatch)
    check_output(capsys.readouterr().out)


def test_readme_python_example_says_what_to_run_when_no_encoder_is_there(without_shared, monkeypatch):
    from callqa.encoders import EncoderNotFound

    with pytest.raises(EncoderNotFound, match=r"no encoder at .*: run `callqa model pull e5-small`"):
        run_readme_python(monkeypatch)


def test_a_missing_encoder_folder_names_the_pull_command(tmp_path):
    from callqa import CallEncoder, RenderSpec

    with pytest.raises(FileNotFoundError, match=r"no encoder at .*nowhere: run `callqa model pull e5-small`"):
        CallEncoder.from_file(tmp_path / "nowhere", RenderSpec())


def test_notebooks_are_committed_without_outputs():
    import nbformat

    books = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert [b.stem for b in books] == ["01-data", "02-error-analysis", "03-retrain-from-reviews"]
    for book in books:
        nb = nbformat.read(book, as_version=4)
        nbformat.validate(nb)
        ran = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not ran, f"{book.name}: cells {ran} carry outputs; clear them before committing"
