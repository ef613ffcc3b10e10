"""Command-line entry points: each module has ``main(argv=None)``, wrapped in ``tool_main``; ``tools/<name>.py``
and the console scripts declared in setup.py call them. What every tool shares is here: paths given on the command
line resolved one way, a user's mistake reported as one line, ``--debug`` for the traceback."""
import argparse
import functools
import math
import os
import shutil
import sys
import tempfile
from typing import Callable, Optional, Sequence, Tuple, TypeVar

from perception.paths import REPO_ROOT
from perception.threads import apply_thread_policy, set_openmp_environment

set_openmp_environment()  # before any tool imports torch: the OpenMP runtime reads it once, at start

EVALUATION_PROCESS_GROUP_TIMEOUT_S = 24 * 3600.0
"""torch.distributed's timeout for the evaluation tools under torchrun: a process waits at a barrier while another
evaluates whole (robustness: its cells; test --ablations: the main process scores one ablation with the devkit before
the next), minutes on a large split. A process that fails is stopped by torchrun at once, so this bounds only a
deadlock's report."""
USER_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError, ValueError)
"""What this project raises for bad input (DESIGN.md: a message naming the file or value and the problem): a missing
or truncated file, a checkpoint that does not fit its config, an unknown split or scene, an output path that is a
file where a folder goes or the other way round or may not be written (the OSError names the path)."""

Result = TypeVar("Result")


def tool_main(
    main: Callable[[Optional[Sequence[str]]], Result]
) -> Callable[[Optional[Sequence[str]]], Optional[Result]]:
    """Decorates a tool's ``main(argv=None)``: a USER_ERRORS exception is printed as one line ``error: ...`` (its
    message, line breaks made spaces) on stderr and the process exits with status 1; with ``--debug`` among the
    arguments it propagates with its traceback. Every other exception (a bug) propagates unchanged. The tool's
    parser takes ``--debug`` through add_debug_option. The process's thread policy (perception.threads) is applied
    first. Called with ``argv`` (from Python) it returns main's result; called without (the command line: the
    console script's ``sys.exit(main())``, tools/*.py) it returns None, which exits with status 0."""

    @functools.wraps(main)
    def run_reporting_errors(argv: Optional[Sequence[str]] = None) -> Optional[Result]:
        from_command_line = argv is None
        argv = list(sys.argv[1:] if from_command_line else argv)
        apply_thread_policy()
        try:
            result = main(argv)
        except USER_ERRORS as error:
            if "--debug" in argv:
                raise
            print("error: " + " ".join(str(error).split()), file=sys.stderr)
            raise SystemExit(1) from None
        return None if from_command_line else result

    return run_reporting_errors


def tool_command(tool: str, argv: Sequence[str]) -> str:
    """The command line that ran ``tool`` (its name in tools/, e.g. "train") with ``argv``, as a checkpoint's card
    or a table records it: ``python tools/<tool>.py ARGS``."""
    return f"python tools/{tool}.py " + " ".join(argv)


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    """``--debug``: tool_main shows a user error's traceback instead of its one line."""
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error, not its one line")


def check_output_path(parser: argparse.ArgumentParser, option: str, path: str, folder: bool = True) -> None:
    """Before any work: parser.error when the output ``path`` (given as ``option``; a folder, or with ``folder``
    False a file) exists as the other kind, when the nearest of its parents that exists is not a folder, or when
    nothing can be written there (a file made and removed in the nearest existing folder: a read-only file
    system, a folder without write permission). Creates nothing."""
    if os.path.exists(path) and os.path.isdir(path) != folder:
        parser.error(f"{option} {path}: exists and is not a {'folder' if folder else 'file'}")
    nearest = path if folder and os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    while not os.path.exists(nearest):
        nearest = os.path.dirname(nearest)
    if not os.path.isdir(nearest):
        parser.error(f"{option} {path}: {nearest} is a file, not a folder")
    try:
        tempfile.TemporaryFile(dir=nearest).close()
    except OSError as error:
        parser.error(f"{option} {path}: cannot write in {nearest} ({error.strerror or error})")


def check_own_folder(out: str, record_file: str, tool: str, rerun: str) -> None:
    """ValueError when the output folder ``out`` holds files but no ``record_file``: not a folder that
    tools/``tool``.py wrote, whose files a rerun would remove or write over (``rerun`` says how)."""
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(os.path.join(out, record_file)):
        raise ValueError(f"--out {out}: holds files but no {record_file} (not a folder tools/{tool}.py {rerun}); "
                         f"choose another folder or empty it")


def staging_folder(out: str, report_file: str, tool: str) -> str:
    """Where a tool builds the output folder ``out`` before moving it in whole (replace_folder): ``<out>.partial``,
    a killed run's removed. ValueError when ``out`` holds files but no ``report_file`` (check_own_folder): not a
    folder ``tool`` finished, which a rerun replaces whole."""
    check_own_folder(out, report_file, tool, "finished, which a rerun replaces whole")
    staging = os.path.normpath(out) + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    return staging


def replace_folder(staging: str, out: str) -> None:
    """Moves the finished ``staging`` folder (staging_folder) to ``out``, replacing a finished run's."""
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.replace(staging, out)


def check_row_names(parser: argparse.ArgumentParser, names: Sequence[str], count: int) -> None:
    """parser.error unless ``names`` (--names, or the tool's default names) are ``count`` distinct names, one for
    each row of a comparison: two rows of one name could not be told apart."""
    if len(names) != count or len(set(names)) != len(names):
        parser.error(f"--names: {count} distinct names needed, got {list(names)}")


def check_device(parser: argparse.ArgumentParser, device: str) -> None:
    """parser.error when ``device`` (--device) names CUDA and torch sees no CUDA device."""
    if device.startswith("cuda"):
        import torch  # here: the tools that run on the CPU only do not wait for it

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device")


def resolve_path(path: str) -> str:
    """``path`` as given when it exists or is absolute, else relative to the repository root (configs name their
    data that way, and tools run from elsewhere name configs that way)."""
    return path if os.path.exists(path) or os.path.isabs(path) else str(REPO_ROOT / path)


def resolve_input_paths(args: argparse.Namespace, *names: str) -> None:
    """Each of ``args``' attributes ``names`` (an input path, a list of them, or None when not given) resolved in
    place like every path a tool reads (resolve_path): checkpoints, graphs, data roots, earlier runs' files."""
    for name in names:
        value = getattr(args, name)
        if isinstance(value, list):
            setattr(args, name, [resolve_path(path) for path in value])
        elif value is not None:
            setattr(args, name, resolve_path(value))


def resolve_config(path: str) -> str:
    """A config path as every tool takes it (resolve_path); FileNotFoundError when there is no such file."""
    resolved = resolve_path(path)
    if not os.path.isfile(resolved):
        raise FileNotFoundError(f"{path}: no such config (give a file under configs/, e.g. configs/fusion_tiny.py)")
    return resolved


def check_data_root(parser: argparse.ArgumentParser, root: str, version: Optional[str]) -> None:
    """Before any work: parser.error when ``root``/``version`` (a data root as resolve_path gives it, and its
    version) holds no nuScenes tables (no such folder, or no version at all)."""
    tables = os.path.join(root, str(version))
    if not version or not os.path.isdir(tables):
        parser.error(f"no nuScenes tables at {tables} (give --dataroot / --version, or generate the synthetic world "
                     f"with tools/make_synthetic.py)")


def check_evaluated_split(parser: argparse.ArgumentParser, option: str, split: str) -> None:
    """parser.error when ``split``, given as ``option``, is no split the devkit evaluates
    (perception.datasets.splits.check_evaluated_split)."""
    from perception.datasets import splits

    try:
        splits.check_evaluated_split(split)
    except ValueError as error:
        parser.error(f"{option} {error}")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """``--dataroot`` / ``--version``, defaulting to the config's ``dataroot`` / ``data_version`` (config_data)."""
    parser.add_argument("--dataroot", help="default: the config's dataroot")
    parser.add_argument("--version", help="default: the config's data_version")


def config_data(parser: argparse.ArgumentParser, args: argparse.Namespace, config) -> Tuple[str, str]:
    """(data root, version) of add_data_options' flags, else of the config (an mmengine Config); the root resolved
    like every path a tool takes (resolve_path) and checked (check_data_root)."""
    root = resolve_path(args.dataroot or config.get("dataroot", ""))
    version = args.version or config.get("data_version")
    check_data_root(parser, root, version)
    return root, version


def _integer_at_least(text: str, least: int, what: str, why: str = "") -> int:
    """``text`` as an integer >= ``least``; argparse.ArgumentTypeError naming ``what`` (and ``why``) otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be an integer, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{what} must be >= {least}{why}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return _integer_at_least(text, 1, "the value")


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    return _integer_at_least(text, 0, "the value")


def seed(text: str) -> int:
    """An argparse type: a random seed, an integer >= 0 (what numpy's and torch's generators take)."""
    return _integer_at_least(text, 0, "a seed")


def _finite_float(text: str, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the value must be a number, got {text!r}") from None
    if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
        raise argparse.ArgumentTypeError(f"the value must be finite and {'>' if positive else '>='} 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    return _finite_float(text, positive=True)


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    return _finite_float(text, positive=False)


def sweep_count(text: str) -> int:
    """An argparse type: a number of sweeps, an integer >= 1 (the keyframe's own included)."""
    return _integer_at_least(text, 1, "a number of sweeps", " (the keyframe's own)")


def parse_image_size(text: str) -> Tuple[int, int]:
    """'WxH' -> (W, H), as an argparse type."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"image size must look like 800x450 (WxH), got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"image size must be at least 1x1, got {text!r}")
    return width, height


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """``--lidar-sweeps`` / ``--radar-sweeps`` / ``--image-size``: what each frame is loaded with, where not the
    config's model_inputs (the oracle's: OracleDetector's sweeps, the images at their own size); read by
    input_options."""
    from perception.detector import OracleDetector  # here: the tools without frames do not load it

    parser.add_argument("--lidar-sweeps", type=sweep_count,
                        help=f"default: the config's model_inputs (oracle: {OracleDetector.lidar_sweeps})")
    parser.add_argument("--radar-sweeps", type=sweep_count,
                        help=f"default: the config's model_inputs (oracle: {OracleDetector.radar_sweeps})")
    parser.add_argument("--image-size", type=parse_image_size,
                        help="WxH the camera images are loaded at (default: the config's; the model resizes them to "
                             "its own)")


def input_options(args: argparse.Namespace, config_path: Optional[str]) -> Tuple[int, int, Optional[Tuple[int, int]]]:
    """(LiDAR sweeps, radar sweeps, image size (W, H) or None: as stored) of add_input_options' flags where given,
    else of the model_inputs of the config at ``config_path``, else (no config: the oracle) OracleDetector's sweeps
    and no image size."""
    if config_path is None:
        from perception.detector import OracleDetector

        lidar_sweeps, radar_sweeps, image_size = OracleDetector.lidar_sweeps, OracleDetector.radar_sweeps, None
    else:
        from perception.models import model_inputs

        inputs = model_inputs(config_path)
        lidar_sweeps, radar_sweeps, image_size = inputs.lidar_sweeps, inputs.radar_sweeps, inputs.image_size
    return (lidar_sweeps if args.lidar_sweeps is None else args.lidar_sweeps,
            radar_sweeps if args.radar_sweeps is None else args.radar_sweeps,
            image_size if args.image_size is None else args.image_size)
