"""`edgedeploy card init|check`: the model card, a model's input contract (see :mod:`edgedeploy.cards`)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgedeploy.cli.output import console, emit_json

app = typer.Typer(help="Model cards: input size, layout, colours, scaling, resize mode, task, labels.",
                  no_args_is_help=True)


@app.command()
def init(model: str = typer.Argument(..., help="An .onnx model file."),
         output: Path = typer.Option(None, "-o", "--output", help="Where to write the card (default: "
                                     "MODEL.card.yaml beside the model)."),
         force: bool = typer.Option(False, "--force", help="Overwrite an existing card."),
         json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Write a commented draft card for MODEL from its graph (input name, shape, guessed layout), to complete by hand."""
    from edgedeploy import cards
    from edgedeploy.errors import UserError
    from edgedeploy.util import atomic_write

    path = Path(model)
    if path.suffix.lower() != ".onnx" or not path.is_file():
        raise UserError(f"card init {model}: expected an existing .onnx file (export PyTorch models first: "
                        "`edgedeploy optimize` and edgedeploy.ingest.from_torch write the ONNX file they use)")
    out = output or cards.card_path(path)
    if out.exists() and not force:
        raise UserError(f"{out} exists; edit it, or pass --force to overwrite it with a fresh draft")
    text = cards.draft(path)
    with atomic_write(out, "w") as f:
        f.write(text)
    if json_:
        return emit_json({"card": str(out), "model": str(path)})
    console.print(f"wrote {out}: check size, color, mean/std and task against how the model was trained",
                  markup=False, highlight=False)


@app.command()
def check(model: str = typer.Argument(..., help="An .onnx model file or a zoo name."),
          card: Path = typer.Option(None, "--card", help="Card file (default: MODEL.card.yaml beside the model)."),
          json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Validate MODEL's card against its graph and print what it says the model expects."""
    from edgedeploy import cards
    from edgedeploy.errors import UserError
    from edgedeploy.ingest import load_model

    m = load_model(model)
    found = cards.find(m.path, card) or (cards.from_zoo(m.zoo) if m.zoo else None)
    if found is None:
        raise UserError(f"no card for {model}: expected {cards.card_path(m.path)} or --card FILE; "
                        f"write a draft with `edgedeploy card init {model}`")
    c = cards.resolve(found, m.onnx_path())
    if json_:
        return emit_json(c.model_dump(mode="json"))
    console.print(c.describe(), markup=False, highlight=False)
