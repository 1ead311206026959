# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""One run of arvados_docker_images: several arvados_docker_image tasks at once, over one Arvados client.

Each image is one `DockerImageTask`, with its own options validated against the image module's argument spec, run in
a pool of `parallel` threads; its result (or its failure, as a result) is the image module's, in the order given. A
failing image fails the task once every other has ended, and the message names each one that failed.

Memory: each upload holds at most two Keep blocks of 64 MiB at once (`_upload.write_stream`, `blocks_in_flight=2`),
so `parallel` uploads hold at most `2 * parallel` blocks.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import concurrent.futures
import functools
import typing as t


from ansible_collections.arvados.cluster.plugins.module_utils._arvados import ARVADOS_CONNECTION_SPEC, ArvadosClient, connection_options
from ansible_collections.arvados.cluster.plugins.module_utils._docker import DOCKER_CONNECTION_SPEC
from ansible_collections.arvados.cluster.plugins.module_utils._errors import CollectionError
from ansible_collections.arvados.cluster.plugins.module_utils._image_task import argument_spec as image_argument_spec
from ansible_collections.arvados.cluster.plugins.module_utils._image_task import ensure_image
from ansible_collections.arvados.cluster.plugins.module_utils._task import TaskContext, run_task

DEFAULT_PARALLEL = 4
# Options every image shares: the task's, never an image's own (a token stays where no_log covers it).
SHARED_OPTIONS = tuple(ARVADOS_CONNECTION_SPEC) + tuple(DOCKER_CONNECTION_SPEC)


def argument_spec() -> dict[str, t.Any]:
    spec: dict[str, t.Any] = {
        # Declared option by option, so that ansible-core checks every entry first and hides the no_log ones everywhere.
        "images": {"type": "list", "elements": "dict", "required": True, "options": image_spec()},
        "parallel": {"type": "int", "default": DEFAULT_PARALLEL},
    }
    spec.update(ARVADOS_CONNECTION_SPEC)
    spec.update(DOCKER_CONNECTION_SPEC)
    return spec


def image_spec() -> dict[str, t.Any]:
    """What one entry of `images` takes: the image module's options but the shared ones."""
    return {name: option for name, option in image_argument_spec().items() if name not in SHARED_OPTIONS}


def ensure_images(context: TaskContext) -> dict[str, t.Any]:
    """Ensure every image of `images`, `parallel` at a time; the result holds one image module result per image."""
    params = context.params
    if params["parallel"] < 1:
        raise CollectionError(f"parallel must be at least 1, not {params['parallel']}; it is how many images are ensured at once")
    images = params["images"]
    if not images:
        return {"changed": False, "results": []}
    client = ArvadosClient(connection_options(params.get))
    shared = {name: params.get(name) for name in SHARED_OPTIONS}
    run_one = functools.partial(ensure_one, context, client, shared)
    with concurrent.futures.ThreadPoolExecutor(min(params["parallel"], len(images))) as pool:
        results = list(pool.map(run_one, images))
    return batch_result(images, results)


def ensure_one(context: TaskContext, client: ArvadosClient, shared: dict[str, t.Any], image: t.Any) -> dict[str, t.Any]:
    """One image's result, as the image module would return it for these options; a failure is a failed result."""
    label = image_label(image)
    image_context = TaskContext(params={**image, **shared}, check_mode=context.check_mode, diff=context.diff,
                                warn=lambda message: context.warn(f"{label}: {message}"), run_command=context.run_command)
    return run_task(functools.partial(ensure_image, client=client), image_context)


def image_label(image: t.Any) -> str:
    """How messages name one entry of `images`: its name and tag, and its project when it gives one."""
    if not isinstance(image, dict):
        return "an entry"
    name = str(image.get("name") or "an entry without a name")
    name = f"{name}:{image['tag']}" if image.get("tag") and ":" not in name.rsplit("/", 1)[-1] else name
    return f"{name} in {image['project_uuid']}" if image.get("project_uuid") else name


def batch_result(images: list[t.Any], results: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """`changed` when any image changed; failed, naming each failed image, when any failed."""
    result: dict[str, t.Any] = {"changed": any(bool(one.get("changed")) for one in results), "results": results}
    failed = [(image, one) for image, one in zip(images, results) if one.get("failed")]
    if failed:
        reasons = "; ".join(f"{image_label(image)}: {one.get('msg', 'failed')}" for image, one in failed)
        result.update(failed=True, msg=f"{len(failed)} of {len(images)} images failed ({reasons})")
    return result
