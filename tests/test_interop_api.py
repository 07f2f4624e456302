"""The `torch_utils` API that published network pickles call (spec section 2): the names, the keyword
names and the defaults, as the spec lists them. A pickle's embedded source calls these by keyword, so
a renamed argument or a changed default breaks loading or changes what it renders."""

import importlib
import inspect
import math

import pytest

_ = inspect.Parameter.empty  # no default: the argument is required
SPEC = [
    ("torch_utils.misc", "assert_shape", [("tensor", _), ("ref_shape", _)]),
    ("torch_utils.misc", "constant", [("value", _), ("shape", None), ("dtype", None), ("device", None),
                                      ("memory_format", None)]),
    ("torch_utils.misc", "suppress_tracer_warnings", []),
    ("torch_utils.misc", "profiled_function", [("fn", _)]),
    ("torch_utils.misc", "params_and_buffers", [("module", _)]),
    ("torch_utils.misc", "named_params_and_buffers", [("module", _)]),
    ("torch_utils.misc", "copy_params_and_buffers", [(None, _), (None, _), ("require_all", False)]),
    ("torch_utils.misc", "ddp_sync", [("module", _), ("sync", _)]),
    ("torch_utils.misc", "check_ddp_consistency", [("module", _), ("ignore_regex", None)]),
    ("torch_utils.misc", "print_module_summary", [("module", _), ("inputs", _), ("max_nesting", 3),
                                                  ("skip_redundant", True)]),
    ("torch_utils.misc", "InfiniteSampler", [("dataset", _), ("rank", 0), ("num_replicas", 1), ("shuffle", True),
                                             ("seed", 0), ("window_size", 0.5)]),
    ("torch_utils.persistence", "persistent_class", [(None, _)]),
    ("torch_utils.persistence", "is_persistent", [("obj", _)]),
    ("torch_utils.persistence", "import_hook", [(None, _)]),
    ("torch_utils.persistence", "_reconstruct_persistent_obj", [("meta", _)]),
    ("torch_utils.training_stats", "report", [("name", _), ("value", _)]),
    ("torch_utils.training_stats", "report0", [("name", _), ("value", _)]),
    ("torch_utils.training_stats", "Collector", [("regex", ".*"), ("keep_previous", True)]),
    ("torch_utils.training_stats", "init_multiprocessing", [("rank", _), ("sync_device", _)]),
    ("torch_utils.ops.bias_act", "bias_act", [("x", _), ("b", None), ("dim", 1), ("act", "linear"), ("alpha", None),
                                              ("gain", None), ("clamp", None), ("impl", "cuda")]),
    ("torch_utils.ops.upfirdn2d", "setup_filter", [("f", _), ("device", "cpu"), ("normalize", True),
                                                   ("flip_filter", False), ("gain", 1), ("separable", None)]),
    ("torch_utils.ops.upfirdn2d", "upfirdn2d", [("x", _), ("f", _), ("up", 1), ("down", 1), ("padding", 0),
                                                ("flip_filter", False), ("gain", 1), ("impl", "cuda")]),
    ("torch_utils.ops.upfirdn2d", "filter2d", [("x", _), ("f", _), ("padding", 0), ("flip_filter", False),
                                               ("gain", 1), ("impl", "cuda")]),
    ("torch_utils.ops.upfirdn2d", "upsample2d", [("x", _), ("f", _), ("up", 2), ("padding", 0), ("flip_filter", False),
                                                 ("gain", 1), ("impl", "cuda")]),
    ("torch_utils.ops.upfirdn2d", "downsample2d", [("x", _), ("f", _), ("down", 2), ("padding", 0),
                                                   ("flip_filter", False), ("gain", 1), ("impl", "cuda")]),
    ("torch_utils.ops.filtered_lrelu", "filtered_lrelu", [("x", _), ("fu", None), ("fd", None), ("b", None), ("up", 1),
                                                          ("down", 1), ("padding", 0), ("gain", math.sqrt(2)),
                                                          ("slope", 0.2), ("clamp", None), ("flip_filter", False),
                                                          ("impl", "cuda")]),
    ("torch_utils.ops.conv2d_gradfix", "conv2d", [("input", _), ("weight", _), ("bias", None), ("stride", 1),
                                                  ("padding", 0), ("dilation", 1), ("groups", 1)]),
    ("torch_utils.ops.conv2d_gradfix", "conv_transpose2d", None),  # the spec gives no arguments
    ("torch_utils.ops.conv2d_gradfix", "no_weight_gradients", [("disable", True)]),
    ("torch_utils.ops.conv2d_resample", "conv2d_resample", [("x", _), ("w", _), ("f", None), ("up", 1), ("down", 1),
                                                            ("padding", 0), ("groups", 1), ("flip_weight", True),
                                                            ("flip_filter", False)]),
    ("torch_utils.ops.fma", "fma", [("a", _), ("b", _), ("c", _)]),
    ("torch_utils.ops.grid_sample_gradfix", "grid_sample", [("input", _), ("grid", _)]),
]


@pytest.mark.parametrize("module, name, params", SPEC, ids=[f"{m.rsplit('.', 1)[-1]}.{n}" for m, n, _p in SPEC])
def test_callables_take_the_published_arguments(module, name, params):
    fn = getattr(importlib.import_module(module), name)
    assert callable(fn)
    if params is None:
        return
    got = list(inspect.signature(fn).parameters.values())
    positional = [p for p in got if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert len(positional) >= len(params), [p.name for p in got]
    for p, (want_name, want_default) in zip(positional, params):  # in the published order
        if want_name is not None:  # None: the spec calls it positionally only
            assert p.name == want_name, (name, [q.name for q in positional])
        if want_default is _:
            assert p.default is _, f"{name}({p.name}) must be required"
        elif want_name == "device" and want_default == "cpu":  # torch.device("cpu")
            assert str(p.default) == want_default
        else:
            assert p.default == want_default and type(p.default) is type(want_default), (name, p.name, p.default)
    for p in positional[len(params):]:  # anything added after them must not change published calls
        assert p.default is not _, f"{name}: extra argument {p.name} must have a default"


def test_module_flags_and_activation_table():
    from torch_utils.ops import bias_act, conv2d_gradfix, grid_sample_gradfix
    assert isinstance(conv2d_gradfix.enabled, bool) and isinstance(grid_sample_gradfix.enabled, bool)
    acts = bias_act.activation_funcs
    assert {"linear", "relu", "lrelu", "tanh", "sigmoid", "elu", "selu", "softplus", "swish"} <= set(acts)
    # The published defaults that networks rely on (alpha and gain of each activation).
    assert (acts["lrelu"].def_alpha, acts["lrelu"].def_gain) == (0.2, pytest.approx(math.sqrt(2)))
    assert acts["linear"].def_gain == 1 and acts["relu"].def_gain == pytest.approx(math.sqrt(2))
    assert all(hasattr(a, "def_alpha") and hasattr(a, "def_gain") for a in acts.values())
