"""``acp audit``: verify the audit trail, take signed checkpoints of it, make keys."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from agent_control_plane.cli.common import (
    THE_DEFAULT_TARGET,
    ExitCode,
    JsonOption,
    ProgressOption,
    Target,
    console,
    emit_json,
    fail,
    opened,
    print_table,
    progress_bar,
    targeted,
)
from agent_control_plane.models import AuditReport

audit_app = typer.Typer(
    help="Verify the audit trail and take signed checkpoints of it.", no_args_is_help=True
)

SigningKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--signing-key",
        help="Sign with this Ed25519 private key (PEM file) instead of the audit key "
        "(ACP_AUDIT_KEY).",
        envvar="ACP_CHECKPOINT_SIGNING_KEY",
    ),
]


def _report_json(report: AuditReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "sessions_checked": report.sessions_checked,
        "events_checked": report.events_checked,
        "assurance": report.assurance,
        "checkpoint_at": None if report.checkpoint_at is None else report.checkpoint_at.isoformat(),
        "problems": [
            {
                "session_id": None if p.session_id is None else str(p.session_id),
                "seq": p.seq,
                "problem": p.problem,
                "detail": p.detail,
            }
            for p in report.problems
        ],
    }


@audit_app.command()
@targeted
def verify(
    session: Annotated[str | None, typer.Option("--session", help="Only this session id.")] = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option(
            "--checkpoints",
            help="Also check the trail against the newest valid signed checkpoint in this "
            "JSON-lines file or directory.",
        ),
    ] = None,
    checkpoint_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint-key",
            help="An Ed25519 public key (PEM file) that may sign checkpoints; repeatable. "
            "HMAC-signed checkpoints verify with the audit keys.",
        ),
    ] = None,
    as_json: JsonOption = False,
    show_progress: ProgressOption = None,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Recompute every chain and counter; name each edited, missing, inserted, reordered
    or forged event, and (with --checkpoints) each head behind or unlike its checkpoint
    and each session gone. Uses ACP_AUDIT_KEY and ACP_AUDIT_KEYS. Exit 1 on any problem."""
    with (
        opened(database) as control_plane,
        progress_bar("verifying sessions", show_progress) as update,
    ):
        report = control_plane.verify_audit(
            session,
            progress=update,
            checkpoints=checkpoints,
            checkpoint_keys=checkpoint_key or None,
        )
    if as_json:
        typer.echo(json.dumps(_report_json(report)))
    elif report.ok:
        console.print(
            f"[green]audit trail intact[/]: {report.events_checked} events in "
            f"{report.sessions_checked} sessions"
        )
    else:
        print_table(
            ("session", "seq", "problem", "detail"),
            (
                (problem.session_id or "-", problem.seq, problem.problem, problem.detail)
                for problem in report.problems
            ),
            title="Audit problems",
        )
    if not as_json:
        console.print(f"[dim]assurance: {report.assurance}[/]")
    if not report.ok:
        raise typer.Exit(ExitCode.FAILED)


@audit_app.command()
@targeted
def checkpoint(
    sink: Annotated[
        str | None,
        typer.Option(
            "--sink",
            help="Append to this JSON-lines file, write a new file into this directory, or "
            "POST to this http(s) URL. Keep it where the database's users cannot write.",
            envvar="ACP_CHECKPOINT_SINK",
        ),
    ] = None,
    signing_key: SigningKeyOption = None,
    as_json: JsonOption = False,
    database: Target = THE_DEFAULT_TARGET,
) -> None:
    """Sign a statement of the whole trail (every session's head, the highest event id,
    the counts, the time) and store it outside the database; without --sink, print it."""
    with opened(database) as control_plane:
        taken = control_plane.audit_checkpoint(sink, signing_key=signing_key)
    if as_json or sink is None:
        emit_json(taken.to_json_data())
        return
    console.print(
        f"checkpoint of {taken.taken_at.isoformat(timespec='seconds')} signed "
        f"({taken.signature.algorithm}, key {taken.signature.key_id}): {taken.sessions} "
        f"sessions, {taken.events} events, highest event id {taken.max_event_id}; sent to {sink}"
    )


@audit_app.command()
def keygen(
    ed25519: Annotated[
        Path | None,
        typer.Option(
            "--ed25519",
            help="Instead, write a new Ed25519 private key (PEM, mode 600) to this file and "
            "its public key next to it (.pub), for signing checkpoints.",
        ),
    ] = None,
) -> None:
    """Print a new random audit key (for ACP_AUDIT_KEY), or make an Ed25519 key pair."""
    if ed25519 is None:
        typer.echo(secrets.token_urlsafe(32))
        return
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    public_path = ed25519.with_name(ed25519.name + ".pub")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    public_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    try:
        fd = os.open(ed25519, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as private_file:
            private_file.write(private_pem)
        public_path.write_bytes(public_pem)
    except OSError as exc:
        raise fail(f"cannot write the key pair: {exc}") from exc
    console.print(f"private key: {ed25519} (keep it away from the database)")
    console.print(f"public key: {public_path} (give it to acp audit verify --checkpoint-key)")
