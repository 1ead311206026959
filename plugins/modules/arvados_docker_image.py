#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

from __future__ import annotations

DOCUMENTATION = r"""
module: arvados_docker_image
short_description: Ensure a Docker image is stored in an Arvados cluster
version_added: 0.1.0
description:
  - Ensures that a Docker image is stored in Keep as a collection owned by an Arvados project, with the
    C(docker_image_hash) and C(docker_image_repo+tag) links that container requests find it by, as
    C(arv-keepdocker) stores it.
  - Checks what the cluster already holds first, through the same listing C(arv-keepdocker) uses. An image
    already in the project only gets the links it lacks; an image the token can read elsewhere is copied
    into the project without moving any bytes; only a missing image is uploaded, streamed from the Docker
    daemon or an archive file straight into Keep with no temporary file.
  - Reports which collection the API server will now pick for O(name), and warns when another image holds
    the tag.
  - With O(state=absent), removes the project's tag links and, with O(purge=true), trashes the collections
    left without a tag.
  - A task that runs on the controller through the local connection, with the controller's own Python as its
    interpreter (as the implicit C(localhost) has) and without become or async, runs the module's code in the
    controller's task process through the module's action plugin, which saves starting a Python for the module.
    Options, results, check mode, diff and the task's C(environment) are the same either way; any other task
    ships the module as usual.
author:
  - arvados.cluster contributors (@arvados)
requirements:
  - arvados-python-client >= 3.2.1
  - docker >= 7.1.0 (for O(source=local) and O(source=pull))
  - python-dxf >= 12.1 (for O(source=registry))
extends_documentation_fragment:
  - arvados.cluster.arvados
  - arvados.cluster.arvados.DOCKER
  - arvados.cluster.attributes
  - arvados.cluster.attributes.actiongroup_arvados
  - arvados.cluster.attributes.controller_action
attributes:
  async:
    description: Supports being used with the C(async) keyword.
    support: full
    details:
      - An async task always ships the module.
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  name:
    description:
      - The image, as C(repo), C(repo:tag), C(host:port/path/repo:tag), or an image id C(sha256:<hex>).
      - Names are normalised as Docker does, so C(docker.io/library/debian) is C(debian) and a registry's
        C(:443) port is dropped.
      - An image id, or an id prefix of C(sha256:) and at least 4 hex digits (or 12 bare hex digits), names
        an image without a tag; it gets only a C(docker_image_hash) link.
    type: str
    required: true
  tag:
    description:
      - The tag, when O(name) has none. A tag in both O(name) and O(tag) must be the same.
      - Defaults to V(latest) when neither gives one.
    type: str
  state:
    description:
      - V(present) ensures the image is in the project with both links.
      - V(absent) removes the project's C(docker_image_repo+tag) links for O(name) (for an image id, every
        link of the project on collections holding that image). See O(purge) to trash the collections too.
    type: str
    choices: [present, absent]
    default: present
  source:
    description:
      - Where the image comes from when the cluster does not hold it yet.
      - V(local) reads it from the Docker daemon at O(docker_host). If the daemon is unreachable or lacks the
        image but the cluster already holds O(name), the cluster's image is used, as C(arv-keepdocker) does.
      - V(pull) pulls O(name) through the Docker daemon first (see O(pull)). Registry credentials come from
        the Docker host's own login (C(~/.docker/config.json)); use M(community.docker.docker_login) to set it.
      - V(archive) reads a C(docker save) archive at O(archive_path) on the host that runs the module, in the
        classic layout, the Docker 25 layout, or a pure OCI layout (converted on the fly). No Docker daemon is needed.
      - V(registry) reads O(name) straight from its registry, with no Docker daemon. O(name) may give the registry
        host and port (C(registry.example:5000/team/bwa:0.7.17)) and pin a manifest digest
        (C(team/bwa@sha256:<hex>); a C(repo:tag) link is made only when a tag is given too); a name without a host
        is on Docker Hub. The manifest tells the image id, so only the manifest is read when the cluster already
        holds the image, and check mode is exact. The stored file is a C(docker load)-able archive whose bytes depend
        on the manifest alone. Layers compressed with zstd, and foreign layers, are refused. A new collection records
        the manifest digest and the reference in its properties C(docker-image-manifest-digest) and
        C(docker-image-registry-reference).
      - V(arvados) copies the image from another Arvados cluster (see O(source_api_host)), with no Docker daemon. O(name)
        is resolved there as the lookup resolves it (the server's choice for C(repo:tag); the collections holding the id
        for an image id). The destination is checked first, and the source's Keep is read only when the destination
        cannot find the image; blocks then go from the source's Keep to the destination's, a few at a time, with no
        temporary file. The new collection has the same manifest, hence the same portable data hash, as the source's,
        and its links carry the source's C(image_timestamp). Only format v2 images are copied.
    type: str
    choices: [local, pull, archive, registry, arvados]
    default: local
  source_api_host:
    description:
      - With O(source=arvados), the host and port of the source cluster's API server.
      - When not set, the variable C(arvados_source_api_host), then the file O(source_cluster) names.
      - Only read with O(source=arvados); set with another source, the task fails.
    type: str
  source_api_token:
    description:
      - With O(source=arvados), a token of the source cluster that can read the image's collection and links.
      - When not set, the variable C(arvados_source_api_token), then the file O(source_cluster) names.
    type: str
  source_api_insecure:
    description:
      - With O(source=arvados), do not check the source API server's TLS certificate (a test cluster).
      - When not set, the variable C(arvados_source_api_insecure), then the file O(source_cluster) names.
    type: bool
  source_cluster:
    description:
      - With O(source=arvados), the source cluster's id (five characters, such as V(zzzzz)). The connection options
        that neither O(source_api_host), O(source_api_token), O(source_api_insecure) nor their variables set are read
        from C(~/.config/arvados/<source_cluster>.conf) on the host that runs the module, the file C(arv-copy --src)
        reads.
    type: str
  pull:
    description:
      - With O(source=pull), V(missing) pulls only when the daemon lacks O(name); V(always) pulls every time.
      - A pull alone never makes the task C(changed); only a change in the cluster does.
      - In check mode nothing is pulled. With V(missing), the image the daemon already has, or else the cluster's,
        stands in. With V(always), the registry is asked, as with O(source=registry) below, which image the tag names
        now, and check mode reports the image a pull would bring, with Docker's saved login (C(config.json)) and the CA the
        daemon trusts for the registry (C(/etc/docker/certs.d/<host>/ca.crt)); where the registry cannot be asked, the
        daemon's image stands in, with a warning.
      - A collection stored from a pull records the manifest digest the daemon pulled and the reference, as with
        O(source=registry) (C(docker-image-manifest-digest), C(docker-image-registry-reference)).
      - With O(source=registry), V(missing) asks the registry nothing when the project already holds O(name)'s
        C(repo:tag) in a collection recorded (C(docker-image-registry-reference)) as stored from the same reference; the
        image it records stands. V(always) asks the registry for the manifest digest every time (a C(HEAD) request, in
        check mode too), and reads the manifest only when the digest is not the one recorded, so a tag pushed anew makes
        the task C(changed), with the image id the tag now names, in check mode as in a real run. A name pinned by digest
        always reads its manifest.
    type: str
    choices: [always, missing]
    default: missing
  platform:
    description:
      - The platform to pull, for example V(linux/amd64), with O(source=pull).
      - With O(source=registry), the image of a multi-platform index to store; V(linux/amd64) when not set (the
        compute nodes' platform matters, not the controller's). A platform the index lacks fails, naming those it has.
    type: str
  archive_path:
    description:
      - The image archive to read with O(source=archive). Required then, and refused with any other source.
      - The image is stored under O(name) whatever the archive calls it. When the archive names its image otherwise (the
        C(RepoTags) of C(docker save), or the C(org.opencontainers.image.ref.name) and C(io.containerd.image.name)
        annotations of an OCI archive, compared in the stored form, so C(docker.io/team/tiny:1.0) is C(team/tiny:1.0)),
        the task warns, naming the archive's names. An archive that names no image, as C(docker save IMAGE_ID) writes
        it, is stored silently.
    type: path
  registry_username:
    description:
      - The user to log in to the registry as, with O(source=registry); refused with other sources.
      - Without O(registry_username) and O(registry_password), the login saved for the registry is used, from Docker's
        C(config.json) (in E(DOCKER_CONFIG), else C(~/.docker)), then the containers
        C(auth.json) (E(REGISTRY_AUTH_FILE), C($XDG_RUNTIME_DIR/containers/auth.json),
        C(~/.config/containers/auth.json)); else the registry is read anonymously.
      - As Docker reads a C(config.json), a credential helper named for the registry in C(credHelpers), else the
        C(credsStore) of every registry, is asked first (C(docker-credential-<helper> get) with the registry on its
        standard input, on the host the module runs on); a helper that holds nothing for the registry means anonymous
        access, a helper that is not installed fails the task.
      - Registries that use bearer-token realms (Docker Hub, quay.io) and basic auth are both supported.
    type: str
  registry_password:
    description:
      - The password or token for O(registry_username). Given with it, or not at all.
    type: str
  registry_ca_path:
    description:
      - A PEM file of the certificate authorities to verify the registry's certificate with, with O(source=registry).
        By default the system's are used.
    type: path
  registry_insecure:
    description:
      - With O(source=registry), what Docker's C(insecure-registries) means - the registry's certificate is not
        verified, and plain HTTP is allowed. Registries on C(127.0.0.0/8), C(::1) and C(localhost) may speak plain
        HTTP without it, as with Docker.
    type: bool
    default: false
  project_uuid:
    description:
      - The project that owns the collection and its links. Defaults to the token user's home project.
      - Checked with either O(state), so a mistyped or unreadable project fails the task rather than holding nothing.
    type: str
  collection_name:
    description:
      - The name of the collection. When not set, a new collection is named as C(arv-keepdocker) names it,
        for example C(Docker image tiny:1.0 sha256:be05d), and an existing one keeps its name.
    type: str
  properties:
    description:
      - Properties merged into the collection's properties. Keys not listed are left alone.
    type: dict
  replication:
    description:
      - The desired replication of the collection (C(replication_desired)).
    type: int
  storage_classes:
    description:
      - The desired storage classes of the collection (C(storage_classes_desired)).
    type: list
    elements: str
  force:
    description:
      - Upload the image again into a new collection even if the cluster already holds it.
    type: bool
    default: false
  verify:
    description:
      - Read the image's collection (the project's, or the one it would be copied from) back from Keep and check it
        as C(docker load) would, against the image the task ensures, before trusting it. A collection that does not
        load as the image is replaced by a new upload; in the project, its image links are removed and it is
        trashed, and C(actions) says why.
      - Costs a read of the whole image from Keep on every run. Uploads are always checked, whether or not this is set.
    type: bool
    default: false
  force_image_format:
    description:
      - Store the image even if the cluster's C(dockerImageFormats) does not list its format.
    type: bool
    default: false
  purge:
    description:
      - With O(state=absent), also trash the project's collections of the image that no C(docker_image_repo+tag) link
        points at any more, whether this run or an earlier one removed their tags, with the project's
        C(docker_image_hash) links on them.
      - The image is identified as for O(state=present), by its O(source) (the Docker daemon, or O(archive_path)), or
        by O(name) when that is an image id. When the source cannot say and the project holds no tag link for O(name),
        the task fails without changing anything and asks for the image id as O(name).
    type: bool
    default: false
  exclusive:
    description:
      - Make C(repo:tag) resolve to this image, as when rolling a tag back to an older build. The task removes the
        C(docker_image_repo+tag) link for O(name) from the project's collections of other images, after this image's
        own links are in place.
      - The API server picks among every readable collection with that tag, in any project. Collections outside
        O(project_uuid) are left alone; when one of them still wins, the task says so in a warning naming it.
      - Needs O(state=present) and a tag (not an image id as O(name)).
    type: bool
    default: false
  claim_ttl:
    description:
      - How long, in seconds, the claim a run makes before it uploads the image lasts unless renewed. The run renews
        it every third of this while it uploads, and removes it once the collection and links are made (or the upload
        fails).
      - Another run for the same image and project, on any host, waits while the claim lasts and then reports the
        claimant's collection. A claim left by a killed run is taken over once it has gone unrenewed this long (the
        killed run's own O(claim_ttl)), or at once by the next run that shares its host lock (same machine, same
        C(~/.cache/arvados-cluster/locks)).
    type: int
    default: 300
notes:
  - Every image the module stores is checked while it streams, before any collection or link is created, as
    C(docker load) would check it, whether it comes from an archive or the Docker daemon. Each layer's sha256 must be
    its C(diff_ids) entry in the config (or, for an OCI blob, its digest), the config's digest must be the image id,
    each member the manifest names must be there once, and no member name may be absolute or have a C(..) component.
    An archive that fails fails the task, naming the member; blocks already sent to Keep are left for its garbage
    collection. Members an archive's manifest does not name are left out of what is stored.
  - A run that fails after it changed something reports C(changed) and names what it left (a collection, links);
    the next run takes it up.
  - Two runs for the same image into one project upload it once, whichever hosts they run on. Before uploading, a run
    claims the image in the project through the cluster. It creates an empty collection named
    C(arvados.cluster upload claim <image id>) in the project, which the API server's rule of one name per owner lets
    only one run create. The claim's C(trash_at) is its expiry (see O(claim_ttl)); it is trashed once the collection
    and links are made. A run that finds the image claimed waits, then reports C(ok) with the claimant's collection
    (and how long it waited, in RV(waited_for_upload)).
  - On one host, runs for the same image also take a lock in C(~/.cache/arvados-cluster/locks) around reading, planning
    and changing the project, so two runs there never both add the same links; the lock file is removed when the run ends.
  - A run killed during an upload leaves no link behind; the next run finds a collection it saved by the
    C(docker-image-id) property and only adds its links.
  - At the default O(num_retries) and O(api_timeout), an API server that refuses connections or answers too slowly
    makes the task fail within a minute. A certificate the managed node does not trust, a host name that does not
    resolve, and an O(api_host) that does not talk TLS fail at once.
seealso:
  - name: arv-keepdocker
    description: The Arvados command-line tool this module replaces.
    link: https://doc.arvados.org/user/topics/arv-docker.html
"""

EXAMPLES = r"""
# The examples use these variables: images_project_uuid (a project the token can write, such as
# zzzzz-j7d0g-0123456789abcde), images_registry (a registry host, such as registry.example:5000) and
# images_archive (the path of a `docker save` archive on the host that runs the module);
# source_arvados_api_host and source_arvados_api_token give another cluster to copy from.

- name: Store the image tiny:1.0 from the local Docker daemon in a project
  arvados.cluster.arvados_docker_image:
    name: tiny
    tag: "1.0"
    project_uuid: "{{ images_project_uuid }}"
  register: tiny

- name: Show the portable data hash to put in container requests
  ansible.builtin.debug:
    msg: "container_image: {{ tiny.portable_data_hash }}"

- name: Pull an image from a registry, then store it
  arvados.cluster.arvados_docker_image:
    name: "{{ images_registry }}/team/bwa:0.7.17"
    source: pull
    pull: missing
    platform: linux/amd64

- name: Store an image straight from its registry, with no Docker daemon
  arvados.cluster.arvados_docker_image:
    name: "{{ images_registry }}/team/bwa:0.7.17"
    source: registry
    project_uuid: "{{ images_project_uuid }}"
    # A registry that wants a login: registry_username and registry_password (else Docker's config.json).

- name: Store an image from a saved archive, with no Docker daemon
  arvados.cluster.arvados_docker_image:
    name: tiny:1.0
    source: archive
    archive_path: "{{ images_archive }}"
    project_uuid: "{{ images_project_uuid }}"
    properties:
      team: genomics
    replication: 2

- name: Copy an image from another Arvados cluster, with the same portable data hash
  arvados.cluster.arvados_docker_image:
    name: tiny:1.0
    source: arvados
    source_api_host: "{{ source_arvados_api_host }}"
    source_api_token: "{{ source_arvados_api_token }}"
    project_uuid: "{{ images_project_uuid }}"

- name: Set the connection once for every Arvados task of a block
  module_defaults:
    group/arvados.cluster.arvados:
      api_host: "{{ arvados_api_host }}"
      api_token: "{{ arvados_api_token }}"
  block:
    - name: Remove the tag and trash the collection left without one
      arvados.cluster.arvados_docker_image:
        name: tiny:1.0
        project_uuid: "{{ images_project_uuid }}"
        state: absent
        purge: true

- name: Roll the tag stable back to an older build, taking it from the project's newer images
  arvados.cluster.arvados_docker_image:
    name: tiny:stable
    project_uuid: "{{ images_project_uuid }}"
    exclusive: true
"""

RETURN = r"""
collection_uuid:
  description: The project's collection that holds the image (a new one in check mode is not known yet).
  returned: when state is present
  type: str
  sample: zzzzz-4zz18-0123456789abcde
portable_data_hash:
  description: The portable data hash of the image's collection, the value to put in a container request.
  returned: when state is present
  type: str
  sample: 7f3b1e0e5d3b2e5c9c3b9e1f3a6d1c2e+1224
image_id:
  description: The image id, the digest of the image's configuration.
  returned: when the image is known
  type: str
  sample: sha256:be05d0e5e2b6d3c4b1a7d1e9f7c0a1b2c3d4e5f60718293a4b5c6d7e8f901234
repo:
  description: The normalised repository, or null for an image id.
  returned: always
  type: str
  sample: tiny
tag:
  description: The tag, or null for an image id.
  returned: always
  type: str
  sample: "1.0"
project_uuid:
  description: The project that owns the collection and links.
  returned: always
  type: str
  sample: zzzzz-j7d0g-0123456789abcde
actions:
  description: What the task did, or would do in check mode, in words.
  returned: always
  type: list
  elements: str
  sample:
    - upload image sha256:be05d... into project zzzzz-j7d0g-0123456789abcde (not in the cluster)
    - create docker_image_hash link 'sha256:be05d...' to the new collection
image:
  description: The image as the cluster lists it after the task, as the info module returns each image.
  returned: when state is present and not in check mode
  type: dict
  contains:
    collection_uuid:
      description: The collection.
      type: str
    portable_data_hash:
      description: Its portable data hash.
      type: str
    owner_uuid:
      description: Its owner.
      type: str
    image_timestamp:
      description: The image's creation time recorded on its links.
      type: str
resolves_to:
  description: What the API server picks for C(repo:tag) after the task, from the token's point of view.
  returned: when state is present and a repo is known
  type: dict
  contains:
    collection_uuid:
      description: The collection the server picks, or null when nothing resolves.
      type: str
    portable_data_hash:
      description: Its portable data hash.
      type: str
    image_id:
      description: The image id it holds.
      type: str
    is_this_image:
      description: Whether that is the image this task declared.
      type: bool
    message:
      description: Why the server picks it, in words.
      type: str
pulled:
  description: Whether the image was pulled from its registry (O(source=pull)). A pull alone does not make the task changed.
  returned: when state is present
  type: bool
  sample: false
waited_for_upload:
  description: Seconds this run waited while another run, on this host or another, uploaded the same image into the project.
  returned: when the run waited for another run's upload claim
  type: float
  sample: 12.5
diff:
  description: Before and after, with C(--diff).
  returned: when diff mode is on
  type: dict
  contains:
    before:
      description:
        - With O(state=present), what C(repo:tag) resolved to, the project's collection of the image, and every image
          link the project holds on it (C(project_links), each C(<link_class> <name>)); with O(exclusive), the
          project's collections of other images that carry the tag (C(other_images_tagged)).
        - With O(state=absent), the links the task removes (C(project_links), each C(<link_class> <name> -> <collection>))
          and, with O(purge), the project's collections of the image (C(project_collections)).
      type: dict
    after:
      description: The same after the task, read back from the cluster, or predicted from the planned actions in check mode.
      type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.arvados.cluster.plugins.module_utils._image_task import argument_spec, ensure_image
from ansible_collections.arvados.cluster.plugins.module_utils._task import run_module


def main() -> None:
    run_module(AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True), ensure_image)


if __name__ == "__main__":
    main()
