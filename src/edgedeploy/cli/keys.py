"""`edgedeploy keys generate|list|rotate|sign`: Ed25519 keys that sign deployments and model versions."""

from __future__ import annotations

from pathlib import Path

import typer

from edgedeploy.cli.output import console, emit_json, table

app = typer.Typer(help="Signing keys: generate, list, rotate; sign a deployment or model version directory.",
                  no_args_is_help=True)


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False)


@app.command("generate")
def generate(directory: Path = typer.Argument(..., help="Where to write NAME.key (private, 0600) and NAME.pub."),
             name: str = typer.Option("edgedeploy", help="Key name (file stem)."),
             json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Make a new Ed25519 key pair; copy only the .pub file to the machines that verify."""
    from edgedeploy.security import keys

    priv, pub = keys.generate_keypair(directory, name)
    kid = keys.key_id(keys.load_public_keys(pub)[0])
    if json_:
        return emit_json({"key_id": kid, "private": str(priv), "public": str(pub)})
    _say(f"key {kid}: private {priv} (keep it secret), public {pub} (give to verifiers: --trusted-key)")


@app.command("list")
def list_(directory: Path = typer.Argument(..., help="A key directory."),
          json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """The keys in DIRECTORY: name, key id, and whether the private half is there."""
    from edgedeploy.security import keys

    rows = keys.list_keys(directory)
    if json_:
        return emit_json(rows)
    console.print(table(f"keys in {directory}", ["name", "key id", "private key"],
                        [[r["name"], r["key_id"], "yes" if r["private"] else "no"] for r in rows]))


@app.command("rotate")
def rotate(directory: Path = typer.Argument(..., help="The key directory."),
           name: str = typer.Option("edgedeploy", help="The key to replace."),
           drop_old: bool = typer.Option(False, "--drop-old", help="Also delete the old public key (artefacts signed "
                                                                   "with it stop verifying against this directory)."),
           json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Replace a key with a new one; the old private key is deleted, its public key kept as NAME-<id>.pub
    (still trusted by verifiers given the directory) until --drop-old."""
    from edgedeploy.security import keys

    info = keys.rotate(directory, name, keep_old_public=not drop_old)
    if json_:
        return emit_json(info)
    _say(f"{name}: key {info['old_key_id']} → {info['new_key_id']}; re-sign what you ship "
         f"(`edgedeploy keys sign DIR --key {info['private']}`)")


@app.command("sign")
def sign(directory: Path = typer.Argument(..., help="A deployment directory or a model version directory."),
         key: Path = typer.Option(..., "--key", help="The private key (NAME.key)."),
         json_: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List every file of DIRECTORY in manifest.json (keeping its other fields) and sign it (manifest.sig)."""
    import json

    from edgedeploy.security import keys, signing

    private = keys.load_private_key(key)
    old = directory / signing.MANIFEST
    extra = {}
    if old.is_file():
        try:
            extra = {k: v for k, v in json.loads(old.read_text()).items() if k not in ("files", "format")}
        except ValueError:
            extra = {}
    path = signing.sign_directory(directory, private, extra=extra)
    files = json.loads(path.read_text())["files"]
    kid = keys.key_id(private.public_key())
    if json_:
        return emit_json({"directory": str(directory), "key_id": kid, "files": len(files)})
    _say(f"{directory}: {len(files)} files signed with key {kid}")
