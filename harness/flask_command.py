"""``flask migrations-verify``: the harness as a command of the ``flask`` CLI (entry point ``flask.commands``).

It runs ``migration-harness run`` with the app ``flask`` was pointed at (``flask --app …`` / ``FLASK_APP`` /
``.flaskenv``), and takes the same options::

    flask --app myapp:create_app migrations-verify --db sqlite,postgresql --json reports/migrations.json

The harness still loads the app afresh in a worker process per scratch database (never on the database the app
is configured for), so the app ``flask`` loaded here is not used for any migration.
"""
from __future__ import annotations

import click


@click.command("migrations-verify", add_help_option=False,
               context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def verify(ctx: click.Context) -> None:
    """Verify the app's Flask-Migrate chain on SQLite, PostgreSQL and MySQL (options as for
    `migration-harness run`)."""
    from flask.cli import ScriptInfo

    from .cli import main

    info = ctx.find_object(ScriptInfo)
    args = list(ctx.args)
    app = getattr(info, "app_import_path", None) if info else None
    if app and "--app" not in args:
        args = ["--app", app, *args]
    main(["run", *args], prog_name="flask migrations-verify")
