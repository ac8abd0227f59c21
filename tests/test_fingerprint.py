"""Code fingerprints: exactly the code a stage runs, as syntax (comments do not count)."""

from pathlib import Path

from eoembed.fingerprint import code_parts, fingerprint


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src" / "eoembed"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("from eoembed.b import heavy\n")
    (src / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from eoembed.c import helper\n"
        "if TYPE_CHECKING:\n    from eoembed.b import Heavy\n\n"
        "def used():\n    return _inner() + helper()\n\n"
        "def _inner():\n    return 1\n\n"
        "def unused():\n    from eoembed.b import heavy\n    return heavy()\n")
    (src / "b.py").write_text("def heavy():\n    return 2\n\nclass Heavy:\n    pass\n")
    (src / "c.py").write_text("def helper():\n    return 3\n")
    script = tmp_path / "stage.py"
    script.write_text("from eoembed.a import used\nused()\n")
    return src, script


def test_only_reached_code_counts(tmp_path):
    src, script = _tree(tmp_path)
    parts = code_parts([str(script)], src)
    assert set(parts) == {"script:stage.py", "eoembed.a:_inner,used", "eoembed.c:helper"}
    before = fingerprint([str(script)], src)
    b = src / "b.py"
    b.write_text(b.read_text().replace("return 2", "return 20"))  # only unused() and a type hint reach it
    assert fingerprint([str(script)], src) == before
    a = src / "a.py"
    a.write_text(a.read_text() + "\n# a comment\n")
    assert fingerprint([str(script)], src) == before
    a.write_text(a.read_text().replace("return 1", "return 10"))  # _inner is called by used()
    assert fingerprint([str(script)], src) != before


def test_a_whole_module_root_and_a_helper_edit(tmp_path):
    src, script = _tree(tmp_path)
    before = fingerprint([str(script), "eoembed.b"], src)
    c = src / "c.py"
    c.write_text("def helper():\n    return 4\n")
    assert fingerprint([str(script), "eoembed.b"], src) != before
    assert "eoembed.b" in code_parts([str(script), "eoembed.b"], src)
