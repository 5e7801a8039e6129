"""Command-line options derived from the config dataclasses (``config.py``): one
declaration of every option's name, type, choices and help, so the CLI, the config file
and the Python API cannot drift apart.

Every derived option defaults to "not given" (argparse.SUPPRESS), so what the user typed
can be told apart from defaults: given options override a ``--config`` file, which
overrides a recipe, which overrides the model family's defaults.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Callable, Optional

from ..config import RunConfig
from ..errors import LmClassifyError
from ..jobs.config import absolute_paths, merge

DATA_SOURCES = ("recipe", "data", "train")


def _typed(fn: Callable[[str], Any]) -> Callable[[str], Any]:
    """argparse reports ValueError/ArgumentTypeError as a usage error; ours too."""
    def parse(value: str) -> Any:
        try:
            return fn(value)
        except LmClassifyError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = getattr(fn, "__name__", "value")
    return parse


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def add_config_options(p: argparse.ArgumentParser) -> None:
    """One flag per field of every config section, in a group per section."""
    for section, cls in RunConfig.SECTIONS.items():
        add_field_options(p.add_argument_group(section), section, cls)


def add_field_options(g, section: str, cls: type, names: Optional[tuple] = None) -> None:
    """Flags for the fields of one config dataclass (only ``names``, where given), each
    landing in ``a.<section>.<field>`` when typed: how a command that needs a few options
    (``embed``, ``generate``) takes them from their one declaration in ``config.py``."""
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True) or (names is not None and f.name not in names):
            continue
        kw: dict = {"dest": f"{section}.{f.name}", "default": argparse.SUPPRESS, "help": f.metadata.get("help")}
        if isinstance(f.default, bool):
            if f.default:
                g.add_argument("--no-" + f.name.replace("_", "-"), action="store_false", **kw)
            else:
                g.add_argument(flag_of(f), action="store_true", **kw)
            continue
        if f.metadata.get("choices"):
            kw["choices"] = f.metadata["choices"]
        else:
            kw["metavar"] = f.name.upper()
        kw["type"] = _typed(f.metadata.get("type") or str)
        g.add_argument(flag_of(f), *f.metadata.get("aliases", ()), **kw)


def given_options(a: argparse.Namespace) -> dict[str, dict]:
    """{section: {field: value}} for the options typed on the command line."""
    given: dict[str, dict] = {s: {} for s in RunConfig.SECTIONS}
    for key, value in vars(a).items():
        section, _, name = key.partition(".")
        if name and section in given:
            given[section][name] = value
    return given


def section_values(a: argparse.Namespace, section: str) -> dict:
    """{field: value} typed for one section of ``add_field_options``."""
    return {k.partition(".")[2]: v for k, v in vars(a).items() if k.startswith(section + ".")}


def config_from_args(a: argparse.Namespace) -> RunConfig:
    """The run config: ``--config FILE`` (paths relative to the file), then the options given
    (paths relative to the working directory). Naming a data source on the command line
    replaces the file's."""
    given = given_options(a)
    base = RunConfig()
    if getattr(a, "config", None):
        base = absolute_paths(RunConfig.load(a.config), Path(a.config).resolve().parent)
        if any(k in given["data"] for k in DATA_SOURCES):
            base = merge(base, {"data": {k: None for k in DATA_SOURCES + ("validation", "test")}})
    cfg = merge(base, {s: v for s, v in given.items()})
    sources = [k for k in DATA_SOURCES if getattr(cfg.data, k)]
    if len(sources) > 1:
        raise LmClassifyError(f"pass only one data source, not {' and '.join('--' + k for k in sources)}")
    return absolute_paths(cfg)


def add_output(p: argparse.ArgumentParser, required: bool = True, what: str = "output model directory") -> None:
    p.add_argument("--output", "-o", required=required, help=what)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")


def check_output(path: Optional[str], overwrite: bool) -> None:
    """Refuse, before any work is done, to replace a file the user has unless told to, or
    to write where it cannot be written."""
    if not path:
        return
    if Path(path).exists() and not overwrite:
        raise LmClassifyError(f"{path} exists; pass --overwrite to replace it")
    if Path(path).is_dir():
        raise LmClassifyError(f"{path} is a directory; name a file to write")
    folder = Path(path).parent
    if not folder.is_dir():
        raise LmClassifyError(f"cannot write {path}: {folder} is not an existing folder")
