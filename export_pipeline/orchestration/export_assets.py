"""How exports are named as Dagster assets; shared by the ops that record them and the sensors
that read them back.

A saved export is a declared, partitioned asset, ``saved_exports/<name>``: the UI can
materialize or backfill any of its periods and shows each period's history. Every other export
(Launchpad, CLI, inbox) is recorded under ``exports/<request id>``, so one request's exports,
re-submitted or re-executed, are one asset's history.
"""

import dagster as dg

REQUEST_PREFIX = "exports"
SAVED_EXPORT_PREFIX = "saved_exports"


def request_asset_key(request_id: str) -> dg.AssetKey:
    return dg.AssetKey([REQUEST_PREFIX, request_id])


def saved_export_asset_key(name: str) -> dg.AssetKey:
    return dg.AssetKey([SAVED_EXPORT_PREFIX, name])


def is_export_asset_key(key: dg.AssetKey) -> bool:
    return len(key.path) == 2 and key.path[0] in (REQUEST_PREFIX, SAVED_EXPORT_PREFIX)
