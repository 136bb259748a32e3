"""Environment settings (``LEADFLOW_*``), kept apart from the workspace file on purpose:
secrets and deployment details live in the environment, business rules in the workspace."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    workspace: Path | None = Field(default=None, description="workspace directory")
    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///WORKSPACE/leadflow.db"
    )
    pool_size: int = Field(default=8, ge=1, description="PostgreSQL connections per process")
    log_level: str = "INFO"
    notify_lease_seconds: float = Field(
        default=300.0, gt=0, description="how long a worker's claim on a notification lasts before another may take it"
    )


def get_settings() -> Settings:
    return Settings()
