"""The input options tools/test.py and tools/replay.py share (perception.cli.add_input_options / input_options):
sweeps and image size from the flags, else the config's model_inputs, else the oracle's defaults."""
import pytest

from perception.cli import replay, test
from perception.paths import REPO_ROOT

FUSION_TINY = str(REPO_ROOT / "configs" / "fusion_tiny.py")
"""Its model_inputs, read by hand in configs/_base_/fusion_model.py: 5 LiDAR sweeps, 6 radar sweeps, 256x144."""


@pytest.mark.parametrize("tool", [test, replay])
def test_both_tools_resolve_sweeps_and_image_size_alike(tool):
    from perception.cli import input_options

    parser = tool.build_parser()
    oracle = parser.parse_args(["--oracle"])
    assert input_options(oracle, None) == (10, 6, None)  # nuScenes' usual sweeps, images as stored
    assert input_options(parser.parse_args([]), FUSION_TINY) == (5, 6, (256, 144))
    flags = parser.parse_args(["--lidar-sweeps", "3", "--radar-sweeps", "2", "--image-size", "64x36"])
    assert input_options(flags, FUSION_TINY) == input_options(flags, None) == (3, 2, (64, 36))
    assert input_options(parser.parse_args(["--radar-sweeps", "1"]), FUSION_TINY) == (5, 1, (256, 144))


@pytest.mark.parametrize("tool", [test, replay])
@pytest.mark.parametrize("wrong, message", [(["--lidar-sweeps", "0"], "a number of sweeps must be >= 1"),
                                            (["--image-size", "0x450"], "image size must be at least 1x1"),
                                            (["--image-size", "800x0"], "image size must be at least 1x1")])
def test_both_tools_refuse_bad_inputs(tool, wrong, message, capsys):
    with pytest.raises(SystemExit):
        tool.build_parser().parse_args(["--oracle", *wrong])
    assert message in capsys.readouterr().err
