import doctest
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "path",
    [ROOT / "README.md", *sorted((ROOT / "packages").glob("*/README.md"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_readme_examples_run(path):
    result = doctest.testfile(
        str(path), module_relative=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0
