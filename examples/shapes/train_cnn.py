"""The shapes example's convolutional network: trained with Keras 3 on JAX, served as ONNX.

`model.entrypoint: train_cnn.py:build` receives the training images as one (N, H, W, C)
uint8 array and their labels. It trains a small CNN (two 3x3 convolutions with max pooling,
global average pooling, a softmax layer) and returns the trained weights as an ONNX graph that
takes the uint8 tensor itself: scaling to 0..1, the layers, then the class name (`label`,
a string) and the class probabilities (`probabilities`). mlci logs it with MLflow's onnx
flavour; serving needs only `onnxruntime` (`pip install 'mlci[onnx]'`), not Keras or JAX.

Install for training: `pip install -r examples/shapes/requirements-cnn.txt` (CPU wheels).
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")


def build(x, y, params: dict[str, Any], seed: int = 0):  # noqa: ANN001 - arrays
    import numpy as np

    classes = sorted({str(v) for v in np.asarray(y).tolist()})
    codes = np.array([classes.index(str(v)) for v in np.asarray(y).tolist()])
    model = train(x, codes, len(classes), int(params.get("epochs", 20)),
                  int(params.get("filters", 8)), seed)
    return to_onnx(model, x.shape[1:], classes)


def train(x, codes, k: int, epochs: int, filters: int, seed: int):  # noqa: ANN001
    import keras
    import numpy as np

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(x.shape[1:]),
        keras.layers.Conv2D(filters, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(2 * filters, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(k, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss="sparse_categorical_crossentropy")
    model.fit(x.astype(np.float32) / 255.0, codes, epochs=epochs, batch_size=32, verbose=0,
              shuffle=True)
    return model


def to_onnx(model, shape, classes: list[str]):  # noqa: ANN001
    """The trained Keras layers as an ONNX graph on the uint8 image tensor (NHWC in, the
    convolutions in ONNX's NCHW)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    conv1, _, conv2, _, _, dense = model.layers
    inits, nodes = [], []

    def const(name: str, value) -> str:  # noqa: ANN001
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def conv(i: int, layer, src: str) -> str:  # noqa: ANN001
        kernel, bias = (np.asarray(w, dtype=np.float32) for w in layer.get_weights())
        w = const(f"conv{i}_w", kernel.transpose(3, 2, 0, 1))   # HWIO -> OIHW
        b = const(f"conv{i}_b", bias)
        nodes.append(helper.make_node("Conv", [src, w, b], [f"conv{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"]))
        nodes.append(helper.make_node("MaxPool", [f"relu{i}"], [f"pool{i}"],
                                      kernel_shape=[2, 2], strides=[2, 2]))
        return f"pool{i}"

    nodes.append(helper.make_node("Cast", ["images"], ["pixels"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Mul", ["pixels", const("scale", np.float32(1 / 255))],
                                  ["scaled"]))
    nodes.append(helper.make_node("Transpose", ["scaled"], ["nchw"], perm=[0, 3, 1, 2]))
    out = conv(2, conv2, conv(1, conv1, "nchw"))
    nodes.append(helper.make_node("GlobalAveragePool", [out], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["features"]))
    dw, db = (np.asarray(w, dtype=np.float32) for w in dense.get_weights())
    nodes.append(helper.make_node("Gemm", ["features", const("dense_w", dw),
                                           const("dense_b", db)], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    nodes.append(helper.make_node("ArgMax", ["probabilities"], ["index"], axis=1,
                                  keepdims=0))
    names = numpy_helper.from_array(np.array(classes, dtype=object), "classes")
    inits.append(names)
    nodes.append(helper.make_node("Gather", ["classes", "index"], ["label"], axis=0))
    h, w, c = (int(d) for d in shape)
    graph = helper.make_graph(
        nodes, "shapes_cnn",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", h, w, c])],
        [helper.make_tensor_value_info("label", TensorProto.STRING, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                       ["N", len(classes)])],
        inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8  # what onnxruntime releases of the last years all read
    return proto
