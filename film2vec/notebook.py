"""What the notebooks in notebooks/ need outside Databricks, and the widgets-to-config step they share.

On Databricks a notebook has `dbutils` (its widgets carry the parameters, job parameters included) and
`display` (tables and figures inline). Run as plain Python, a notebook takes the stand-ins below instead:
a widget keeps its default unless the environment sets FILM2VEC_WIDGET_<NAME>, and `local_display` prints
tables and saves figures as PNG files under FILM2VEC_NOTEBOOK_PLOTS (default ./notebook-plots).
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from film2vec.config import Config, ConfigError, apply, load_profile, parsed_text, type_options


def widget_variable(name: str) -> str:
    """The environment variable that sets widget `name` outside Databricks."""
    return f"FILM2VEC_WIDGET_{name.upper()}"


class LocalWidgets:
    """The part of `dbutils.widgets` the notebooks use: text, dropdown, get."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def text(self, name: str, defaultValue: str, label: str | None = None) -> None:
        self._values[name] = os.environ.get(widget_variable(name), defaultValue)

    def dropdown(self, name: str, defaultValue: str, choices: Sequence[str], label: str | None = None) -> None:
        value = os.environ.get(widget_variable(name), defaultValue)
        if value not in choices:
            raise ConfigError(f"widget '{name}' ({widget_variable(name)}) is {value!r}; allowed: one of {choices}")
        self._values[name] = value

    def get(self, name: str) -> str:
        if name not in self._values:
            raise ConfigError(f"widget '{name}' is read before it is defined; known: {', '.join(self._values)}")
        return self._values[name]


class LocalDbutils:
    """Stands in for Databricks' `dbutils` where it is absent: widgets only."""

    def __init__(self) -> None:
        self.widgets = LocalWidgets()


def default_profile() -> str:
    """The profile a notebook starts from: `databricks` on a Databricks cluster, else `local`."""
    return "databricks" if "DATABRICKS_RUNTIME_VERSION" in os.environ else "local"


def local_display(item: Any) -> None:
    """Print a table (Spark or pandas DataFrame, first 20 rows) or save a matplotlib figure and say where."""
    from matplotlib.figure import Figure

    if isinstance(item, Figure):
        folder = Path(os.environ.get("FILM2VEC_NOTEBOOK_PLOTS", "notebook-plots")).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"figure-{len(list(folder.glob('figure-*.png'))) + 1}.png"
        item.savefig(path, dpi=100)
        print(f"[figure saved to {path}]")
        return
    if hasattr(item, "toPandas"):
        item = item.limit(20).toPandas()
    if hasattr(item, "to_string"):
        print(item.head(20).to_string())
        return
    print(item)


def config_from_widgets(widgets: Any, settings: Mapping[str, str], profile: str = "profile") -> Config:
    """The config the widgets describe: the profile the `profile` widget names, then each widget in `settings`
    (widget name → setting key, e.g. {"dim": "train.dim"}) read as that setting (empty ones are skipped).

    A widget's text is read and checked as a flag's is, and the widgets together as the flags are
    (Config.check), so a bad widget stops with the message a bad flag gives.

    Example::

        from film2vec import notebook
        config = notebook.config_from_widgets(dbutils.widgets, {"out": "data.out", "dim": "train.dim"})
    """
    config = load_profile(widgets.get(profile))
    for name, key in settings.items():
        text = widgets.get(name)
        if not text.strip():
            continue
        section, _, field = key.rpartition(".")
        owner = type(getattr(config, section)) if section else Config
        kind = typing.get_type_hints(owner).get(field, str)  # an unknown key: apply says which keys there are
        value = parsed_text(text, type_options(kind))
        apply(config, {section: {field: value}} if section else {field: value}, f"widget '{name}' ({key})")
    config.check()  # widgets that contradict each other stop here, as flags do
    return config
