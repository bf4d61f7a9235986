"""Rows and assertions for migration-harness's `data` check (see the README).

The slug migration (667650b81e78) must turn titles into unique slugs: two posts with titles that slugify alike
are inserted just before it, and the assertion after it checks what it wrote.
"""
import sqlalchemy as sa

ROWS = {
    # inserted while the database is at 8ba14d6aa893, i.e. just before the slug migration runs
    "8ba14d6aa893": {
        "users": [{"id": 9001, "username": "harness-ada"}],
        "posts": [
            {"id": 9001, "author_id": 9001, "title": "Hello World", "body": "first"},
            {"id": 9002, "author_id": 9001, "title": "Hello, World!", "body": "second"},
        ],
    },
}


def after_667650b81e78(conn):
    """Every post has a slug, and the two look-alike titles got distinct ones."""
    slugs = dict(conn.execute(sa.text("SELECT id, slug FROM posts WHERE id IN (9001, 9002)")).all())
    assert slugs == {9001: "hello-world", 9002: "hello-world-2"}, slugs
    missing = conn.execute(sa.text("SELECT count(*) FROM posts WHERE slug IS NULL OR slug = ''")).scalar()
    assert missing == 0, f"{missing} posts without a slug"
