"""Baseline for benchmarks/text.py: a bare FastAPI JSON echo, nothing else."""

from fastapi import FastAPI
from pydantic import BaseModel


class Body(BaseModel):
    text: str


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    def echo(body: Body) -> dict[str, str]:
        return {"text": body.text}

    return app
