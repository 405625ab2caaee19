"""Remove ops that provably hand their data input through unchanged (each line is a law, counted under its name).

    cast             Cast(x){to = dtype of x}                   -> x
    castlike         CastLike(x, like), like has x's dtype       -> x
    reshape          Reshape(x, c), c names x's own shape         -> x    (0 copies a dim unless allowzero; one -1)
    expand           Expand(x, c), broadcast(shape(x), c) = shape(x) -> x
    slice            Slice(x, ...) selecting every element        -> x    (step 1, start 0, end >= dim)
    pad              Pad(x, pads = 0...)                          -> x    (any mode)
    transpose        Transpose(x){perm = 0, 1, ..., n-1}          -> x
    squeeze          Squeeze(x) without axes, no dim of x is 1    -> x    (empty axes read as none, as onnxruntime does)
    unsqueeze        Unsqueeze(x, axes = [])                      -> x
    concat           Concat(x)                                    -> x
    split            Split(x) into one output                     -> x
    tile             Tile(x, repeats = 1...)                      -> x
    mul-one          Mul(x, 1), Mul(1, x)                         -> x
    div-one          Div(x, 1)                                    -> x
    add-zero         Add(x, 0), Add(0, x)                         -> x
    sub-zero         Sub(x, 0)       (never 0 - x)                -> x

Every rule needs the facts that make it exact: constant operands (initializers no caller can
override) and, where the answer depends on them, the input's dims. A symbolic dim counts only
where its value does not matter (a 0 entry of Reshape copies it, an Expand entry of 1 keeps it).
A candidate that cannot be proven a no-op is kept with a remark.

Arithmetic identities are removed only where the constant neither broadcasts the kept operand to
a larger shape nor changes its dtype (the output must be the kept operand's own type), and only
where the identity is exact in IEEE arithmetic: x * 1 and x / 1 are exact for every float (NaN,
infinities and -0.0 included), and so are x + (-0.0) and x - (+0.0); but x + (+0.0) turns -0.0
into +0.0, and so does x - (-0.0). Exporters write exactly these for every zero-initialized bias
(`MatMul` then `Add(+0.0)`). With `signed_zeros` (default true: honour the sign of zero) such a
node goes only where the sign of a zero cannot change a value downstream: its readers, followed
through the ops that can pass a zero's sign on (layout ops, Add, Mul, MatMul, Conv, Relu, Tanh,
LayerNormalization, a Div's numerator, ...), reach no op that can tell -0.0 from +0.0 by value
(a Div's divisor, Reciprocal, Pow with a non-positive or unknown exponent, an op of another
domain, a sub-graph); ops whose result is the same for both zeros (Exp, Softmax, Sigmoid,
comparisons, Cast to an integer) end the search. A graph output may then hold -0.0 where the
original held +0.0 (equal values); `output_zero_signs` keeps those nodes too (bit-exact outputs).
`signed_zeros=false` removes every x + (+0.0), for models whose consumers do not tell -0.0 from
+0.0 (a documented, deliberate departure from bit-exactness). Integer identities are always
exact.

A removed node whose output is a graph output hands the output's name to x's producer, as in
`eliminate-identity`; it is kept when x is a graph input, a constant, a value of an enclosing
graph or another graph output (the interface needs two distinct names).

The constants the removed nodes read (shapes, pads, the 1 of a Mul) are left in place when they
become unused: `dce`, which the pipelines run last, deletes them.

The laws are a table (`mlc.passes._noop_laws`) over matchers by op family (`_noop_laws_shape`,
`_noop_laws_layout`, `_noop_laws_arith`), on the facts of `_noop_facts`, `_noop_splats` and
`_zero_signs`; this module is the rule family that holds a node to its op's law, and the pass.
"""

from __future__ import annotations

from mlc.ir.core import Graph, Node
from mlc.pass_api import Numerics, PassOption, register_pass
from mlc.passes._match_basics import output_name_blocked
from mlc.passes._noop_laws import ARITHMETIC, LAWS, match_noop, type_mismatch
from mlc.passes._zero_signs import ZeroSigns
from mlc.rewrite import IRBuilder, Match, Reject, Rule, RulePass, label


class NoopRule(Rule):
    """The no-op laws as one rule family (`LAWS`): a node is held to its op's law, and a match or a
    reject is counted under that law's name (`cast`, `add-zero`, ...). One rule for the table, not
    one per law, so that a run builds one rule and its op dispatch once."""

    name = "noop"
    law = "Op(x, ...) that hands x through unchanged -> x   (one law per op: LAWS)"
    ops = tuple(LAWS)

    def __init__(self, signed_zeros: bool, output_zero_signs: bool) -> None:
        self.signed_zeros, self.output_zero_signs = signed_zeros, output_zero_signs
        self.signs: dict[int, ZeroSigns] = {}  # per graph, built on first use

    def _signs(self, graph: Graph) -> ZeroSigns | None:
        if not self.signed_zeros:
            return None
        if id(graph) not in self.signs:
            self.signs[id(graph)] = ZeroSigns(graph, self.output_zero_signs)
        return self.signs[id(graph)]

    def match(self, node: Node) -> Match | Reject | None:
        assert node.graph is not None
        found = match_noop(node, self.signed_zeros, self._signs(node.graph) if node.op_type in ARITHMETIC else None)
        if found is None:
            return None
        law = LAWS[node.op_type][0]

        def reject(why: str) -> Reject:  # under the law's name, not the family's
            return Reject(law, label(node), why)

        if isinstance(found, str):
            return reject(found)
        _, source = found
        out = node.outputs[0]
        if out is None or len(node.outputs) != 1:
            return None
        mismatch = type_mismatch(out, source)
        if mismatch is not None:
            return reject(mismatch)
        if output_name_blocked(out, source, node.graph):
            return reject("it names a graph output and its input cannot take the name")
        return Match(node, values={"x": source, "y": out}, rule=law)

    def rewrite(self, match: Match, builder: IRBuilder) -> None:
        builder.bypass(match.root, match["x"])
        builder.ctx.stats["removed"] += 1


@register_pass
class EliminateNoop(RulePass):
    name = "eliminate-noop"
    description = "Remove ops that do nothing (same-type Cast, full Slice, identity Transpose, x*1, ...)"
    numerics = Numerics.EXACT
    options = (
        PassOption("signed_zeros", bool, True,
                   "honour the sign of zero: keep x + (+0.0) and x - (-0.0), which turn -0.0 into +0.0, where "
                   "the sign of a zero can change a value downstream"),
        PassOption("output_zero_signs", bool, False,
                   "with signed_zeros, also keep them where a zero's sign can reach a graph output (bit-exact)"),
    )
    statistics = ("removed",)

    def rule_set(self) -> tuple[Rule]:
        return (NoopRule(bool(self.option("signed_zeros")), bool(self.option("output_zero_signs"))),)


__all__ = ["LAWS", "EliminateNoop", "NoopRule", "match_noop"]
