"""ONNX graph surgery for TensorRT's ONNX parser, which rejects MaxPool's Indices output (the
``rows`` graph uses it for the pool masks)."""
from __future__ import annotations


def without_pool_indices(model_proto):
    """Rewrite every ``MaxPool`` with an ``Indices`` output (which TensorRT's ONNX parser does not
    support) into ops it does: the pooled values by a plain ``MaxPool``, the indices by
    SpaceToDepth -> ArgMax (first maximum, the scan order of MaxPool, torch and ORT) -> the flat
    NCHW index of the window's top-left corner (a Range, strided by Slice) plus the offset in the
    window. Only non-overlapping, unpadded square pools (kernel = stride, the network's 2x2 and the
    exporter's 1x1 helper) occur in the graphs and only those are accepted. Returns a new
    ModelProto; ``tests/test_export_onnx.py`` checks, in ONNX Runtime, that it computes exactly
    what the original computes, ties included."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.ModelProto()
    model.CopyFrom(model_proto)
    graph = model.graph
    nodes, count = [], 0

    def const(name, values):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(
            name + "_v", TensorProto.INT64, [len(values)] if isinstance(values, list) else [], values
            if isinstance(values, list) else [values]))

    for node in graph.node:
        if node.op_type != "MaxPool" or len(node.output) < 2 or not node.output[1]:
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        k, st = list(attrs.get("kernel_shape", [])), list(attrs.get("strides", [1, 1]))
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if (len(k) != 2 or k[0] != k[1] or k != st or any(pads) or attrs.get("ceil_mode", 0)
                or attrs.get("storage_order", 0) or any(d != 1 for d in attrs.get("dilations", [1, 1]))
                or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
            raise ValueError(f"cannot rewrite MaxPool {node.name!r} with attributes {attrs}")
        b = int(k[0])
        x, (y, ind) = node.input[0], node.output[:2]
        p = f"_mpi{count}_"
        count += 1
        plain = helper.make_node("MaxPool", [x], [y], name=p + "maxpool", kernel_shape=k, strides=st)
        if not y:
            plain = None
        new = [n for n in [plain] if n is not None]
        new += [
            helper.make_node("Shape", [x], [p + "shape"]),
            helper.make_node("ReduceProd", [p + "shape"], [p + "numel"], keepdims=0),
            const(p + "zero", 0), const(p + "one", 1),
            helper.make_node("Range", [p + "zero", p + "numel", p + "one"], [p + "iota"]),
            helper.make_node("Reshape", [p + "iota", p + "shape"], [p + "flat"]),  # flat NCHW index of X
            const(p + "starts", [0, 0]), const(p + "ends", [2 ** 62, 2 ** 62]),
            const(p + "axes", [2, 3]), const(p + "steps", [b, b]),
            helper.make_node("Slice", [p + "flat", p + "starts", p + "ends", p + "axes", p + "steps"],
                             [p + "corner"]),  # index of each window's top-left pixel
        ]
        if b == 1:
            new.append(helper.make_node("Identity", [p + "corner"], [ind]))
        else:
            new += [
                helper.make_node("SpaceToDepth", [x], [p + "s2d"], blocksize=b),  # channel (by*b+bx)*C+c
                const(p + "rshape", [0, b * b, -1, 0]),
                helper.make_node("Reshape", [p + "s2d", p + "rshape"], [p + "blocks"]),
                helper.make_node("ArgMax", [p + "blocks"], [p + "k"], axis=1, keepdims=0, select_last_index=0),
                helper.make_node("Shape", [p + "corner"], [p + "oshape"]),
                helper.make_node("Reshape", [p + "k", p + "oshape"], [p + "k4"]),
                const(p + "b", b), const(p + "three", [3]),
                helper.make_node("Div", [p + "k4", p + "b"], [p + "by"]),
                helper.make_node("Mul", [p + "by", p + "b"], [p + "byb"]),
                helper.make_node("Sub", [p + "k4", p + "byb"], [p + "bx"]),
                helper.make_node("Gather", [p + "shape", p + "three"], [p + "w"], axis=0),
                helper.make_node("Mul", [p + "by", p + "w"], [p + "dy"]),
                helper.make_node("Add", [p + "corner", p + "dy"], [p + "c1"]),
                helper.make_node("Add", [p + "c1", p + "bx"], [ind]),
            ]
        nodes += new
    del graph.node[:]
    graph.node.extend(nodes)
    return model
