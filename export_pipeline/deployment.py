"""A production deployment's Dagster instance file from its template (``deploy/dagster.yaml``).

Dagster reads ``{env: NAME}`` only in some fields (storage connections, the queue's total) and
never with a default; run monitoring, run retries and the per-tag limits take plain numbers.
So the template names settings as ``${EXPORT_…}`` and this fills them in from the settings,
defaults included; what Dagster can read itself (the database password) stays ``{env: …}``.
Further templates add sections to the base one (``deploy/run-launcher-docker.yaml`` adds a run
launcher), so the base stays one file whichever launcher a deployment picks.
"""

from __future__ import annotations

import re

import yaml

from export_pipeline.settings import DeploymentSettings, env_name

PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


def instance_values(settings: DeploymentSettings) -> dict[str, str]:
    """Each deployment setting's variable and its value as the file writes it."""
    return {env_name(DeploymentSettings, name): str(getattr(settings, name))
            for name in DeploymentSettings.model_fields}


def render_instance_config(template: str, settings: DeploymentSettings) -> str:
    """The template with every ``${EXPORT_…}`` replaced; a placeholder that is no deployment
    setting is an error (a misspelt name would reach Dagster as a string)."""
    values = instance_values(settings)
    unknown = sorted(set(PLACEHOLDER.findall(template)) - set(values))
    if unknown:
        raise ValueError(f"not a deployment setting: {', '.join(unknown)}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def combine_instance_configs(texts: list[str]) -> str:
    """Rendered templates joined into one file, each adding its own top-level sections; a
    section two of them set is an error (YAML would keep the last one without a word)."""
    seen: dict[str, int] = {}
    for number, text in enumerate(texts, 1):
        for section in yaml.safe_load(text) or {}:
            if section in seen:
                raise ValueError(f"section {section!r} is in template {seen[section]} and template {number}")
            seen[section] = number
    return "\n".join(text.rstrip("\n") + "\n" for text in texts)
