"""A `support_tickets` table made with plain SQL, as a user's own database would hold it, and a
table collection declared over it in a user's defs folder."""

from contextlib import contextmanager

import dagster as dg
import yaml
from dagster.components.testing import create_defs_folder_sandbox
from psycopg import sql

from embed_assets.components.collection import building_with

CUSTOMERS = ("acme", "globex", "initech")
TOPICS = (
    ("cannot log in", "the password reset email never arrives"),
    ("invoice is wrong", "we were charged twice for the annual plan"),
    ("export fails", "the csv export stops at ten thousand rows"),
    ("slow dashboard", "the dashboard takes a minute to load every morning"),
)

TICKETS_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE {tickets} (
    id bigint PRIMARY KEY,
    subject text,
    body text,
    customer text,
    priority text,
    assignee text,
    created_at timestamptz
);
"""


def make_tickets(store, schema: str, n: int) -> str:
    """`<schema>.support_tickets` with n generated rows over three months of 2024; returns its
    qualified name."""
    tickets = sql.Identifier(schema, "support_tickets")
    store.execute(sql.SQL(TICKETS_DDL).format(schema=sql.Identifier(schema), tickets=tickets))
    store.execute(
        sql.SQL(
            "INSERT INTO {} SELECT i, s[1 + i %% 4], b[1 + i %% 4] || ' (ticket ' || i || ')', "
            "c[1 + i %% 3], CASE WHEN i %% 5 = 0 THEN 'high' ELSE 'low' END, 'bob', "
            "timestamptz '2024-01-01' + (i %% 90) * interval '1 day' "
            "FROM generate_series(1, %s) i, (SELECT %s::text[] s, %s::text[] b, %s::text[] c) v"
        ).format(tickets),
        (n, [t[0] for t in TOPICS], [t[1] for t in TOPICS], list(CUSTOMERS)),
    )
    return f"{schema}.support_tickets"


def ticket_collection(table: str, **overrides) -> dict:
    return {
        "name": "tickets",
        "source": {"kind": "table", "table": table},
        "key": "id",
        "time_column": "created_at",
        "text": "{subject}\n\n{body}",
        "metadata": ["customer", "priority"],
        "group_by": "customer",
    } | overrides


@contextmanager
def declared(settings, attributes: dict, folder: str = "tickets"):
    """(definitions, project root) of a user's project declaring `attributes` in
    `<folder>/defs.yaml`, built with `settings`; no resources written: the Component brings them."""
    document = {"type": "embed_assets.EmbeddingCollection", "attributes": attributes}
    with declared_yaml(settings, yaml.safe_dump(document), folder) as declared_defs:
        yield declared_defs


@contextmanager
def declared_yaml(settings, text: str, folder: str):
    """The same, for a `defs.yaml` given as text."""
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.defs_folder_path / folder
        path.mkdir()
        (path / "defs.yaml").write_text(text)
        with building_with(settings), sandbox.build_all_defs() as collections:
            defs = collections  # no resources written: the Component brings them
            dg.Definitions.validate_loadable(defs)
            yield defs, sandbox.project_root
