"""Order-insensitive comparison of outputs a selection picked (detections, top-k): records, not elements.

`mlc.numerics.selection` says which outputs hold records (rows along an axis) that a TopK or
NonMaxSuppression chose and ordered. Outputs of one selection form a group (a detector's boxes,
scores, labels, image_index): record i is row i of each of them, and rows are matched across
the reference and the result as whole records, each field within the output's usual tolerance,
so a box is never paired with another box's score.

What is accepted: the result's records are the reference's records, one to one, in the same order
except where records trade places with others whose score differs by no more than the two sides'
tolerances (a near tie, which a last-bit difference may break either way). The score is each
float output of the group with one value per record (`scores`, TopK's values); without such an
output the order cannot be judged and only the set of records is checked (the note says so).
What still fails: a record with no counterpart (a flipped sign, a moved box, a dropped or added
detection: a different count is a different shape) and a reorder of records that are not tied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mlc.numerics.compare import FAIL, OutputCheck, compare_array, tolerance_for
from mlc.numerics.contract import Numerics
from mlc.numerics.selection import Selection

__all__ = ["GroupResult", "compare_groups"]

_MAX_WORK = 200_000_000  # record pairs x fields beyond which matching is not attempted


@dataclass
class _Part:
    """One output of a group, as (outer, records, fields) arrays; `limit` is each expected field's
    tolerance (None: fields must be equal)."""

    name: str
    axis: int
    exp: np.ndarray
    got: np.ndarray
    limit: np.ndarray | None

    @property
    def score(self) -> bool:
        return self.limit is not None and self.exp.shape[2] == 1


@dataclass
class GroupResult:
    """The checks of a group's outputs, and the sentence the check's report gives for the group."""

    names: list[str]
    checks: dict[str, OutputCheck]
    summary: str


def _part(name: str, axis: int, exp: np.ndarray, got: np.ndarray, numerics: Numerics) -> _Part:
    outer = int(np.prod(exp.shape[:axis], dtype=np.int64))
    shape = (outer, exp.shape[axis], int(np.prod(exp.shape[axis + 1:], dtype=np.int64)))
    limit = None
    if exp.dtype.kind in "fc":
        rtol, atol = tolerance_for(numerics, exp.dtype)
        e64 = exp.astype(np.complex128 if exp.dtype.kind == "c" else np.float64)
        finite = np.isfinite(e64)
        scale = float(np.max(np.abs(e64[finite]))) if finite.any() else 0.0
        limit = np.where(finite, atol * max(scale, 1e-30) + rtol * np.abs(np.where(finite, e64, 0)), 0.0)
        return _Part(name, axis, e64.reshape(shape), got.astype(e64.dtype).reshape(shape), limit.reshape(shape))
    return _Part(name, axis, exp.reshape(shape), got.reshape(shape), limit)


def _close(part: _Part, outer: int, rows: slice) -> np.ndarray:
    """[rows, n]: is expected record i (in `rows`) within tolerance of result record j, field by field."""
    e = part.exp[outer, rows][:, None, :]
    g = part.got[outer][None, :, :]
    if part.limit is None:
        return np.asarray(np.asarray(e == g).all(axis=2))
    with np.errstate(invalid="ignore", over="ignore"):
        ok = (np.abs(e - g) <= part.limit[outer, rows][:, None, :]) | (e == g) | (np.isnan(e) & np.isnan(g))
    return np.asarray(ok.all(axis=2))


def _candidates(parts: Sequence[_Part], outer: int) -> np.ndarray:
    n = parts[0].exp.shape[1]
    close = np.ones((n, n), dtype=bool)
    step = max(1, 4_000_000 // max(n * max(p.exp.shape[2] for p in parts), 1))
    for start in range(0, n, step):
        rows = slice(start, min(n, start + step))
        for part in parts:
            close[rows] &= _close(part, outer, rows)
    return close


def _match(close: np.ndarray) -> np.ndarray:
    """A largest one-to-one pairing expected -> result within `close` (row i pairs with `p[i]`, -1
    for none), keeping every record that matches in place where it is."""
    n = close.shape[0]
    by_exp = np.full(n, -1, dtype=np.int64)
    by_got = np.full(n, -1, dtype=np.int64)
    same = np.flatnonzero(np.diagonal(close))
    by_exp[same] = same
    by_got[same] = same
    adjacency = [np.flatnonzero(close[i]) for i in range(n)]
    for start in np.flatnonzero(by_exp < 0):
        _augment(int(start), adjacency, by_exp, by_got)
    return by_exp


def _augment(start: int, adjacency: list[np.ndarray], by_exp: np.ndarray, by_got: np.ndarray) -> bool:
    """Kuhn's augmenting path from an unpaired expected record (iterative: paths can be long)."""
    seen: set[int] = set()
    stack: list[list[int]] = [[start, 0, -1]]  # expected record, next candidate, result record chosen
    while stack:
        frame = stack[-1]
        row, cursor = frame[0], frame[1]
        options = adjacency[row]
        while cursor < len(options) and int(options[cursor]) in seen:
            cursor += 1
        if cursor == len(options):
            stack.pop()
            continue
        j = int(options[cursor])
        frame[1], frame[2] = cursor + 1, j
        seen.add(j)
        if by_got[j] < 0:
            for exp_row, _, got_row in stack:
                by_exp[exp_row], by_got[got_row] = got_row, exp_row
            return True
        stack.append([int(by_got[j]), 0, -1])
    return False


def _untied_swap(parts: Sequence[_Part], outer: int, order: np.ndarray) -> tuple[int, int] | None:
    """Two expected records the result has in the other order although no score ties them."""
    scores = [p for p in parts if p.score]
    n = order.size
    index = np.arange(n)
    for start in range(0, n, 2048):
        rows = index[start:start + 2048]
        swapped = (index[None, :] > rows[:, None]) & (order[None, :] < order[rows][:, None])
        if not swapped.any():
            continue
        tied = np.zeros_like(swapped)
        for part in scores:
            assert part.limit is not None
            e, lim = part.exp[outer, :, 0], part.limit[outer, :, 0]
            with np.errstate(invalid="ignore"):
                tied |= (np.abs(e[rows][:, None] - e[None, :]) <= lim[rows][:, None] + lim[None, :]) | (
                    e[rows][:, None] == e[None, :])
        bad = np.argwhere(swapped & ~tied)
        if bad.size:
            return int(rows[bad[0][0]]), int(bad[0][1])
    return None


def _aligned(part: _Part, got: np.ndarray, orders: list[np.ndarray]) -> np.ndarray:
    """The result with its records put in the reference's order."""
    shape = got.shape
    outer = int(np.prod(shape[:part.axis], dtype=np.int64))
    flat = got.reshape(outer, shape[part.axis], -1)
    return np.stack([flat[o][orders[o]] for o in range(outer)]).reshape(shape)


def _where(outer: int, row: int, part: _Part, shape: tuple[int, ...]) -> str:
    lead = [int(i) for i in np.unravel_index(outer, shape[:part.axis])] if part.axis else []
    return str([*lead, row])


def _pair(parts: Sequence[_Part], shapes: Mapping[str, tuple[int, ...]]
          ) -> tuple[list[np.ndarray] | None, str, int]:
    """Match the records of `parts` jointly, outer slice by outer slice: (orders, problem, moved)."""
    first = parts[0]
    orders, moved = [], 0
    for outer in range(first.exp.shape[0]):
        close = _candidates(parts, outer)
        order = _match(close)
        unmatched = np.flatnonzero(order < 0)
        if unmatched.size:
            return None, (f"{unmatched.size} of {close.shape[0]} records of the reference have no counterpart in "
                          f"the result (first at {_where(outer, int(unmatched[0]), first, shapes[first.name])})"), moved
        swap = _untied_swap(parts, outer, order) if any(p.score for p in parts) else None
        if swap is not None:
            i, k = swap
            values = ", ".join(f"{p.name} {p.exp[outer, i, 0].real:.6g} vs {p.exp[outer, k, 0].real:.6g}"
                               for p in parts if p.score)
            return None, (f"records {_where(outer, i, first, shapes[first.name])} and "
                          f"{_where(outer, k, first, shapes[first.name])} come out in the other order though "
                          f"their scores are not tied ({values})"), moved
        moved += int((order != np.arange(order.size)).sum())
        orders.append(order)
    return orders, "", moved


def _group_check(names: list[str], selections: Mapping[str, Selection], expected: Mapping[str, np.ndarray],
                 got: Mapping[str, np.ndarray], numerics: Numerics) -> GroupResult:
    parts = [_part(n, selections[n].axis or 0, expected[n], got[n], numerics) for n in names]
    shapes = {n: tuple(expected[n].shape) for n in names}
    first = parts[0]
    axis = first.axis
    ops = "/".join(sorted({op for n in names for op in selections[n].ops}))
    why = f"picked by {ops}: near-tied scores may come out in another order"
    together = ", ".join(names)
    work = first.exp.shape[0] * first.exp.shape[1] ** 2 * sum(p.exp.shape[2] for p in parts)
    if work > _MAX_WORK:
        checks = {n: compare_array(n, expected[n], got[n], numerics) for n in names}
        for check in checks.values():
            _add_note(check, f"{why}; too many records ({first.exp.shape[1]}) to match them, compared in order")
        return GroupResult(names, checks, "")
    orders, problem, moved = _pair(parts, shapes)
    scored = any(p.score for p in parts)
    summary = (f"{together} compared as records along axis {axis}, in any order among near ties ({why}"
               + ("" if scored else "; no per-record score among them, so their order is not checked") + ")")
    if orders is not None:
        checks = {}
        for part, name in zip(parts, names, strict=True):
            check = compare_array(name, expected[name], _aligned(part, np.asarray(got[name]), orders), numerics)
            _add_note(check, f"order-insensitive ({why})" + (f"; {moved} records in another order among near "
                                                              f"ties" if moved else ""))
            checks[name] = check
        return GroupResult(names, checks, summary + (f"; {moved} records reordered" if moved else ""))
    # no joint pairing: blame the outputs whose own records have no counterpart, or all of them
    alone = [_pair([part], shapes) for part in parts] if len(parts) > 1 else [(None, problem, 0)]
    each_pairs = all(orders_alone is not None for orders_alone, _, _ in alone)
    checks = {}
    for part, name, (orders_alone, alone_problem, _) in zip(parts, names, alone, strict=True):
        if orders_alone is not None:
            check = compare_array(name, expected[name], _aligned(part, np.asarray(got[name]), orders_alone),
                                  numerics)
            _add_note(check, f"order-insensitive ({why})")
            if each_pairs:  # every output pairs up alone, not together: the records were recombined
                check.verdict = FAIL
                _add_note(check, f"each of {together} pairs up with the reference alone, but not all "
                                 f"together: {problem}")
        else:
            check = compare_array(name, expected[name], got[name], numerics)
            check.verdict = FAIL
            _add_note(check, f"order-insensitive ({why}), and still: {alone_problem}")
        checks[name] = check
    return GroupResult(names, checks, summary)


def _add_note(check: OutputCheck, note: str) -> None:
    check.note = f"{check.note}; {note}" if check.note else note


def _groups(selections: Mapping[str, Selection], expected: Mapping[str, object],
            got: Mapping[str, object]) -> list[list[str]]:
    """Outputs matched together: same records (outer shape and count along the axis) and a common
    selection among their sources. Outputs that cannot be paired record by record are left out."""
    keyed: dict[tuple[tuple[int, ...], int], list[str]] = {}
    for name in expected:
        selection = selections.get(name)
        e, g = expected.get(name), got.get(name)
        if selection is None or selection.axis is None or not isinstance(e, np.ndarray) or not isinstance(
                g, np.ndarray) or e.shape != g.shape or e.dtype != g.dtype or e.ndim <= selection.axis:
            continue
        if e.dtype.kind not in "biufc":
            continue
        keyed.setdefault((tuple(e.shape[:selection.axis]), int(e.shape[selection.axis])), []).append(name)
    groups: list[list[str]] = []
    for names in keyed.values():
        pending = list(names)
        while pending:
            group = [pending.pop(0)]
            sources = set(selections[group[0]].sources)
            grew = True
            while grew:
                grew = False
                for name in list(pending):
                    if sources & selections[name].sources:
                        group.append(name)
                        sources |= selections[name].sources
                        pending.remove(name)
                        grew = True
            groups.append(group)
    return groups


def compare_groups(expected: Mapping[str, object], got: Mapping[str, object], selections: Mapping[str, Selection],
                   numerics: Numerics) -> list[GroupResult]:
    """Compare every group of selection outputs present on both sides (see the module docstring)."""
    return [_group_check(names, selections, {n: np.asarray(expected[n]) for n in names},
                         {n: np.asarray(got[n]) for n in names}, numerics)
            for names in _groups(selections, expected, got)]
