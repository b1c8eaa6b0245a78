"""Alembic environment: runs migrations on the connection handed in by ``database.migrate``."""

from alembic import context

from moorage.storage.metadata.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic revision --autogenerate` from the command line
    from sqlalchemy import create_engine

    connection = create_engine(context.config.get_main_option("sqlalchemy.url")).connect()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
