"""Create the database named in DATABASE_URL if it does not exist yet."""

import os
import sys
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/opencpa")
parts = urlsplit(url)
name = parts.path.lstrip("/")
maintenance = parts._replace(path="/postgres").geturl()
with psycopg.connect(maintenance, autocommit=True) as conn:
    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    if not exists:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        sys.stdout.write(f"created database {name}\n")
