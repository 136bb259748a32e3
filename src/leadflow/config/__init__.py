"""The workspace file and environment settings."""

from leadflow.config.loader import CONFIG_FILE, LoadedConfig, load_config_file, load_config_text
from leadflow.config.settings import Settings, get_settings
from leadflow.config.workspace import WorkspaceConfig

__all__ = [
    "CONFIG_FILE",
    "LoadedConfig",
    "Settings",
    "WorkspaceConfig",
    "get_settings",
    "load_config_file",
    "load_config_text",
]
