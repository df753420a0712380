"""Where the points of a sweep run: in this process (``local``) or as one Ray task per point (``ray``).

Both backends call the same point function ``fn(family, fields, cache_dir) -> rows``
(:func:`earlylin.sweep.run_point`): a pure function of plain data whose results go to the
content-addressed cache (:class:`earlylin.runtime.records.Cache`) wherever it runs, so a sweep resumes
where it stopped, whichever backend ran it before.

- ``local``: the points one after another in this process (the seeds of a point as one batch).
- ``ray``: one Ray task per point, ``num_gpus=1`` where the point's device is ``cuda`` (or ``auto``
  on a cluster that has GPUs), else ``num_cpus=1``; on a running cluster (``address``, e.g.
  ``"auto"`` after ``ray start --head``) or on a local one started here (and shut down after). A
  task whose worker process dies is retried ``max_retries`` times; a point still failing for that
  reason comes back as error rows, and the sweep completes. Ray is imported here only, lazily: the
  core of earlylin never imports it (the ``[ray]`` extra installs it).

On a cluster, give a ``cache_dir`` that every node sees (a shared file system) for the resume to
cover the whole cluster; each node needs the same earlylin installed (the rows carry the code
fingerprint of the worker that computed them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from earlylin.errors import ConfigError
from earlylin.runtime import progress

Rows = list[dict[str, Any]]
PointFn = Callable[[str, dict[str, Any], "str | None"], Rows]
Failure = Callable[[int, str], Rows]  # (point index, message) → the point's error rows
BACKENDS = ("local", "ray")


def progress_bar(total: int, enabled: bool) -> tqdm:
    """A bar over points on stderr (:func:`earlylin.runtime.progress.bar`: lines every few seconds when stderr is not a
    terminal); off unless ``enabled``."""
    return progress.bar(total=total, unit="point", desc="sweep", enabled=enabled, leave=True)


def run_local(family: str, points: dict[int, dict[str, Any]], fn: PointFn, cache_dir: str | None,
              bar: tqdm) -> dict[int, Rows]:
    """Every point in this process, in order: {point index: rows}."""
    out: dict[int, Rows] = {}
    for i, fields in points.items():
        out[i] = fn(family, fields, cache_dir)
        bar.update(1)
    return out


def _resources(device: str, cluster_gpus: float) -> dict[str, float]:
    """One GPU for a CUDA point (``auto`` counts as CUDA where the cluster has GPUs), else one CPU."""
    if device == "cuda" or (device == "auto" and cluster_gpus >= 1):
        return {"num_cpus": 1, "num_gpus": 1}
    return {"num_cpus": 1}


def run_ray(family: str, points: dict[int, dict[str, Any]], fn: PointFn, cache_dir: str | None, bar: tqdm,
            failure: Failure, address: str | None = None, max_retries: int = 2) -> dict[int, Rows]:
    """Every point as one Ray task: {point index: rows}. Uses a Ray already initialised in this process,
    else connects to ``address`` (None: starts a local Ray, shut down when done)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray; install it with: pip install 'earlylin[ray]'") from None
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address) if address else ray.init(address="local", include_dashboard=False)
        except ConnectionError as err:
            raise ConfigError(f"--ray-address {address}: cannot connect ({err}); start a cluster with `ray start "
                              "--head` and pass --ray-address auto on its head node (an explicit address to a cluster "
                              "with token authentication, the default of recent Ray, also needs RAY_AUTH_MODE=token "
                              "and its token), or leave --ray-address out for a local Ray") from None
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0))
        remote = ray.remote(fn)
        refs = {}
        for i, fields in points.items():
            opts = _resources(str(fields.get("device", "auto")), gpus)
            refs[remote.options(max_retries=max_retries, **opts).remote(family, fields, cache_dir)] = i
        out: dict[int, Rows] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            i = refs[done[0]]
            try:
                out[i] = ray.get(done[0])
            except ray.exceptions.RayTaskError:
                for ref in pending:  # a bug in the point function: stop the sweep, keep what is cached
                    ray.cancel(ref)
                raise
            except ray.exceptions.RayError as err:  # the worker or its node died, retries exhausted
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                out[i] = failure(i, f"{type(err).__name__} after {max_retries} retries: {first}")
            bar.update(1)
        return out
    finally:
        if started:
            ray.shutdown()
