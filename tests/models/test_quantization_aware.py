"""Quantization-aware training (perception.models.quantization_aware): the rounding worked by hand, the wrapped
layer against ONNX Runtime's own static quantization of it, and the fine-tuning spec that wraps and unwraps."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from torch import nn

from perception.deploy.quantize import QUANTIZED_OPS
from perception.models import FusionBatch
from perception.models.finetune import FineTuningSpec, folded_state_dict, prepare_fine_tuning
from perception.models.quantization_aware import QuantizationAware, fake_quantize_input, fake_quantize_weight
from tests.models.helpers import make_frame, tiny_model


def test_weight_rounding_by_hand():
    # channel 0: max |w| 1.27 -> scale 0.01; channel 1: max |w| 2.54 -> scale 0.02
    weight = torch.tensor([[1.27, 0.123, -0.456], [2.54, -0.031, 0.009]], requires_grad=True)
    rounded = fake_quantize_weight(weight, 0)
    expected = torch.tensor([[1.27, 0.12, -0.46], [2.54, -0.04, 0.0]])
    assert torch.allclose(rounded, expected, atol=1e-6)
    rounded.sum().backward()
    assert torch.equal(weight.grad, torch.ones_like(weight))  # straight through
    assert torch.equal(fake_quantize_weight(torch.zeros(2, 3), 0), torch.zeros(2, 3))  # an all-zero channel


def test_input_rounding_by_hand():
    # range [-1, 1.55]: scale 2.55 / 255 = 0.01, zero point 100
    x = torch.tensor([-1.0, 0.123, 0.4449, 1.55, 0.0], requires_grad=True)
    rounded = fake_quantize_input(x, torch.tensor(-1.0), torch.tensor(1.55))
    assert torch.allclose(rounded, torch.tensor([-1.0, 0.12, 0.44, 1.55, 0.0]), atol=1e-6)
    rounded.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    # a range that excludes 0 is widened to hold it: [0.5, 2.55] -> [0, 2.55], scale 0.01, zero point 0
    assert torch.allclose(fake_quantize_input(torch.tensor([0.5, 1.234]), torch.tensor(0.5), torch.tensor(2.55)),
                          torch.tensor([0.5, 1.23]), atol=1e-6)


class _Feeds(CalibrationDataReader):
    def __init__(self, inputs):
        self._feeds = iter([{"x": x.numpy()} for x in inputs])

    def get_next(self):
        return next(self._feeds, None)


@pytest.mark.parametrize("layer", [nn.Conv2d(3, 4, 3, padding=1), nn.ConvTranspose2d(3, 4, 2, stride=2),
                                   nn.Linear(5, 4)])
def test_wrapped_layer_computes_what_onnxruntime_static_int8_computes(layer, tmp_path):
    torch.manual_seed(0)
    calibration = [torch.randn(1, 3, 6, 5) * 2 + 0.5 for _ in range(4)]
    wrapped = QuantizationAware(layer)
    x = torch.randn(1, 3, 6, 5)
    wrapped.train()
    for inputs in calibration:
        wrapped(inputs)
    low = min(float(inputs.min()) for inputs in calibration)
    assert float(wrapped.input_range[0]) == low
    float_file, int8_file = tmp_path / "layer.onnx", tmp_path / "layer_int8.onnx"
    torch.onnx.export(layer, (x,), str(float_file), input_names=["x"], output_names=["y"], dynamo=False)
    quantize_static(str(float_file), str(int8_file), _Feeds(calibration), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=list(QUANTIZED_OPS),
                    extra_options={"OpTypesToExcludeOutputQuantization": ["Conv", "ConvTranspose", "MatMul", "Gemm"]})
    assert any(node.op_type == "DequantizeLinear" for node in onnx.load(str(int8_file)).graph.node)
    session = ort.InferenceSession(str(int8_file), providers=["CPUExecutionProvider"])
    test = torch.randn(1, 3, 6, 5) * 3  # beyond the calibrated range too: clipped alike
    expected = session.run(None, {"x": test.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(wrapped.eval()(test).numpy(), expected, atol=1e-4)  # ORT rounds the bias
        assert np.abs(layer(test).numpy() - expected).max() > 1e-3  # the rounding is there to be simulated


def test_quantization_aware_fine_tuning_wraps_every_weighted_layer_and_folds_back():
    model = tiny_model()
    base_keys = set(model.state_dict())
    weighted = sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) for m in model.modules())
    prepare_fine_tuning(model, FineTuningSpec("full", quantization_aware=True))
    assert sum(isinstance(m, QuantizationAware) for m in model.modules()) == weighted
    model.train()
    model(FusionBatch.from_frames([make_frame(0), make_frame(1)]), mode="tensor")
    ranges = [m.input_range for m in model.modules() if isinstance(m, QuantizationAware)]
    assert all(bool(r[0] <= r[1]) for r in ranges)
    assert set(folded_state_dict(model)) == base_keys
    with pytest.raises(ValueError, match="applies to full and head, not to 'lora'"):
        FineTuningSpec("lora", quantization_aware=True)
