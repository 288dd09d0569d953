"""The one path rule set: what is normalised, what is refused."""

from __future__ import annotations

import pytest

from trackops.artifacts import InvalidArtifactPath, validate_path


@pytest.mark.parametrize("path, normalised", [("", ""), (".", ""), ("./", ""), ("a", "a"), ("./a//b/", "a/b"),
                                              ("a/./b", "a/b"), ("...", "..."), ("a..b/c..", "a..b/c.."),
                                              ("%2e%2e/x", "%2e%2e/x"), ("naïve ü/漢字 1.txt", "naïve ü/漢字 1.txt"),
                                              (".hidden/.x", ".hidden/.x")])
def test_harmless_paths_are_normalised(path, normalised):
    assert validate_path(path) == normalised


@pytest.mark.parametrize("path, reason", [("..", "'..'"), ("a/../b", "'..'"), ("a/b/..", "'..'"),
                                          ("/abs", "absolute"), ("//server/share", "absolute"),
                                          ("a\\b", "backslash"), ("C:/x", "drive"), ("c:", "drive"),
                                          ("a\x00b", "control"), ("a\rb", "control"), ("a\x7fb", "control")])
def test_dangerous_paths_are_refused_with_the_reason(path, reason):
    with pytest.raises(InvalidArtifactPath, match=reason) as caught:
        validate_path(path)
    assert "\n" not in str(caught.value) and caught.value.hint


def test_file_paths_cannot_name_the_root():
    with pytest.raises(InvalidArtifactPath, match="root"):
        validate_path("./", file=True)


def test_non_strings_are_refused():
    with pytest.raises(InvalidArtifactPath, match="not a string"):
        validate_path(b"a")  # type: ignore[arg-type]
