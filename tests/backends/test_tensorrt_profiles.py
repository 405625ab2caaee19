"""Optimization profiles for TensorRT (backends/tensorrt_profiles.py): parsed from the flags,
derived from the graph's static dims, and refused in one line where they disagree. No GPU and no
TensorRT needed."""

from __future__ import annotations

import pytest

from mlc.backends.tensorrt_profiles import Profile, derive_profiles, parse_profile_flag
from mlc.errors import BadInputError
from mlc.testing import as_graph

GRAPH = '''graph "g" (%x: f32[N,3,H,W], %mask: f32[N,S], %k: i64[4]) {
  %y: f32[N,3,H,W] = Relu(%x)
  %z: f32[N,S] = Relu(%mask)
  return %y, %z
}'''


@pytest.mark.parametrize(("flag", "expected"), [
    ("x:1,3,224,224..8,3,224,224", Profile((1, 3, 224, 224), (8, 3, 224, 224), (8, 3, 224, 224))),
    ("x:min=1,3;opt=4,3;max=8,3", Profile((1, 3), (4, 3), (8, 3))),
    ("x:MIN=1;MAX=2", Profile((1,), (2,), (2,))),
    ("in:put:2,2", Profile((2, 2), (2, 2), (2, 2))),
])
def test_flags_parse(flag: str, expected: Profile) -> None:
    name, profile = parse_profile_flag(flag)
    assert profile == expected and name == flag.rpartition(":")[0]


@pytest.mark.parametrize(("flag", "said"), [
    ("x", "expected NAME:MIN..MAX"), ("x:a,b", "not a list of dims"), ("x:0,3", "positive"),
    ("x:4..2", "min <= opt <= max"), ("x:1,2..3", "different ranks"), ("x:min=1;opt=2", "min= and max="),
    ("x:min=1;min=2;max=3", "each once"), ("x:min=1;opt=9;max=3", "dim 0 needs min <= opt <= max, got 1, 9, 3"),
])
def test_bad_flags_are_one_line(flag: str, said: str) -> None:
    with pytest.raises(BadInputError, match=said) as caught:
        parse_profile_flag(flag)
    assert "\n" not in str(caught.value) and caught.value.exit_code == 2


def test_static_inputs_get_their_shape_and_symbols_their_flags() -> None:
    profiles = derive_profiles(as_graph(GRAPH), ["x:1,3,32,32..8,3,64,64", "mask:min=1,16;opt=8,64;max=8,128"])
    assert profiles["k"] == Profile((4,), (4,), (4,))
    assert profiles["x"].to_json() == {"min": [1, 3, 32, 32], "opt": [8, 3, 64, 64], "max": [8, 3, 64, 64]}
    assert profiles["mask"] == Profile((1, 16), (8, 64), (8, 128))


@pytest.mark.parametrize(("flags", "said"), [
    ([], "input 'x' dim 0 (N) is dynamic: give its range with --input-shape x:MIN..MAX (e.g. 1,3,1,1..8,3,8,8)"),
    (["x:1,4,32,32..8,4,64,64", "mask:1,1..8,8"], "x: dim 1 is 3 in the model, the flag gives 4"),
    (["x:1,3,32,32..8,3,64,64", "mask:1,1..4,8"],
     "mask: dim 0 (N) is 1..4 (opt 4), but N of input 'x' is 1..8 (opt 8): one symbolic dim takes one range"),
    (["x:1,3,32..8,3,64", "mask:1,1..8,8"], "x: 3 dims given, the input has 4"),
    (["x:1,3,32,32..8,3,64,64", "mask:1,1..8,8", "y:1..2"], "y: not an input of the model"),
    (["x:1,3,2,2", "x:1,3,2,2"], "given twice"),
])
def test_disagreements_are_refused_naming_the_input_and_dim(flags: list[str], said: str) -> None:
    with pytest.raises(BadInputError, match=said.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        derive_profiles(as_graph(GRAPH), flags)
