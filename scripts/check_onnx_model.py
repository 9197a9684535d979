#!/usr/bin/python3
"""Checks an ONNX model with the official onnx package (Debian: apt-get install python3-onnx) and prints a JSON summary.

  /usr/bin/python3 scripts/check_onnx_model.py MODEL.onnx [--weights FILE.safetensors]

Runs onnx.checker.check_model(full_check=True) (which includes strict shape inference), then prints ir_version,
opsets, graph inputs/outputs with their dims, the op-type histogram and the initializer count. With --weights, every
initializer whose name is also a tensor in the safetensors file must equal it bit for bit (checks raw_data encoding).
Exits 1 with the reason on stderr when any check fails.
"""

import argparse
import json
import os
import sys
from collections import Counter

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'training', 'reference'))
from safetensors_io import read_safetensors  # noqa: E402


def dims(value_info):
    return [d.dim_param if d.HasField('dim_param') else d.dim_value for d in value_info.type.tensor_type.shape.dim]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('model')
    parser.add_argument('--weights')
    args = parser.parse_args()
    model = onnx.load(args.model)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as error:  # the checker raises several exception types; all mean "invalid"
        print(f'onnx.checker rejected {args.model}: {error}', file=sys.stderr)
        sys.exit(1)
    compared = 0
    if args.weights:
        weights, _ = read_safetensors(args.weights)
        for initializer in model.graph.initializer:
            if initializer.name in weights:
                expected = weights[initializer.name]
                actual = numpy_helper.to_array(initializer)
                if actual.shape != expected.shape or actual.dtype != expected.dtype or \
                        actual.tobytes() != expected.tobytes():
                    print(f'initializer {initializer.name} differs from the weights file', file=sys.stderr)
                    sys.exit(1)
                compared += 1
    summary = {
        'ir_version': model.ir_version,
        'opsets': {o.domain or 'ai.onnx': o.version for o in model.opset_import},
        'inputs': [{'name': i.name, 'dims': dims(i)} for i in model.graph.input],
        'outputs': [{'name': o.name, 'dims': dims(o)} for o in model.graph.output],
        'op_types': dict(Counter(n.op_type for n in model.graph.node)),
        'initializers': len(model.graph.initializer),
        'parameters': int(sum(np.prod(i.dims) for i in model.graph.initializer)),
        'initializers_equal_to_weights': compared,
    }
    print(json.dumps(summary))


if __name__ == '__main__':
    main()
