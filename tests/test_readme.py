"""The README's Python example runs as written (it loads the shared encoder's tokenizer)."""

import re

from conftest import REPO


def test_readme_python_example_runs(shared_encoder, monkeypatch, capsys):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(REPO)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "[手机号]" in out and "0.6666667" in out
