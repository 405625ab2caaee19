"""Where the fusion passes' shared helpers used to live, one module; they are now split by seam
(_match_basics, _graph_edits, _affine_fold, _transformer_match, _shape_trace) and re-exported
here for the passes that still import them from this name."""

from mlc.passes._affine_fold import channel_factor, fold_affine, fold_problem, out_channels  # noqa: F401
from mlc.passes._graph_edits import (  # noqa: F401
    drop_dead_constants,
    ensure_ms_opset,
    fused_name,
    new_constant,
    remove_dead_producers,
)
from mlc.passes._match_basics import (  # noqa: F401
    AFFINE_PRODUCERS,
    FLOAT_DTYPES,
    STANDARD,
    const_array,
    dtype_of,
    input_at,
    label,
    output_name_blocked,
    reader_problem,
    static_shape,
)
from mlc.passes._shape_trace import const_ints, dim_source, same_dim, shape_source  # noqa: F401
from mlc.passes._transformer_match import (  # noqa: F401
    CONST_RTOL,
    CONTRIB_DTYPES,
    MS_DOMAIN,
    const_scalar,
    dims_of,
    is_close,
    is_op,
    other_input,
    producer,
    read_only_by,
    sole_reader,
    where,
)
