# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors

from __future__ import annotations

DOCUMENTATION = r"""
name: arvados_docker_image
short_description: The Docker image collection an Arvados API server runs for a container image
version_added: 0.1.0
description:
  - For each term, returns the collection that the Arvados API server would use for a container request whose
    C(container_image) is that term, decided by the server's own rules, from what the token can read.
  - A C(repo:tag) term is split at its B(first) C(:), as the server does. The server looks for readable
    C(docker_image_repo+tag) links named C(repo:tag) on readable, untrashed collections, and when there are none,
    for C(docker_image_hash) links whose name starts with the part before the C(:). Candidates are ordered by the
    image timestamp (build time) recorded on the link, newest first, links without one last, then by the link's
    creation time, both compared in whole seconds; a collection with several matching links is placed by its
    oldest one. Only collections holding exactly one file in a format the cluster supports (C(dockerImageFormats))
    count, after following C(docker_image_migration) links owned by the system user.
  - A portable data hash term resolves to a readable collection with that content, if its format is supported.
  - All terms of one call are read together. Names, full image ids and portable data hashes take a fixed handful of
    API requests whatever their number (one more per 1000 collections they point at); an image id prefix, or a name
    with no readable C(docker_image_repo+tag) link, adds one or two requests of its own.
  - The module M(arvados.cluster.arvados_docker_image), in its C(resolves_to) result, and the info module
    M(arvados.cluster.arvados_docker_image_info), in its C(preferred) entries, give the same answers, read the same way
    and by the same rules.
author:
  - arvados.cluster contributors (@arvados)
requirements:
  - arvados-python-client >= 3.2.1 on the controller
options:
  _terms:
    description:
      - C(repo:tag) or C(repo) (the tag defaults to V(latest)), an image id C(sha256:<hex>) or a prefix of it
        (at least 4 hex digits after C(sha256:)), or a portable data hash.
      - 12 to 64 bare hex digits are read as the server reads them (a repository name, a prefix of an old v1 image's
        id, or with 32 digits a portable data hash); only where that finds nothing are they read as an image id.
      - Image ids are the one departure from the server's rules, see the notes.
    type: list
    elements: str
    required: true
  result:
    description:
      - What to return for each term.
      - V(portable_data_hash) is the value to put in a container request's C(container_image), which pins the
        image's content.
      - V(uuid) is the collection's uuid; for a portable data hash term, that of one readable collection with that
        content (the server picks any).
      - V(all) is a dictionary describing the choice and every candidate, see RV(_raw).
    type: str
    choices: [portable_data_hash, uuid, all]
    default: portable_data_hash
  project_uuid:
    description:
      - Consider only the links and collections that this project owns, as C(arv-keepdocker --project-uuid) lists
        them. The server itself does not look at projects; this answers "which of this project's images would the
        server pick".
    type: str
  on_missing:
    description:
      - What to do for a term that resolves to no image (none readable, or none in a supported format).
      - V(error) fails. V(warn) warns and leaves the term out of the result. V(skip) leaves it out silently.
      - A term that cannot name an image (empty, with whitespace, a malformed image id) fails whatever this says.
    type: str
    choices: [error, warn, skip]
    default: error
extends_documentation_fragment:
  - arvados.cluster.arvados
  - arvados.cluster.arvados.plugins
notes:
  - An option the lookup does not take, a misspelt one for instance, is an error that names it.
  - The result has one value per term, in the order of the terms, unless O(on_missing) leaves some out. Use
    C(query) (or C(wantlist=true)) to get a list even for one term.
  - Where the server's parsing surprises, this returns what the server does. C(registry.example:5000/team/bwa) without
    a tag does not resolve, because the server splits it into C(registry.example) and C(5000/team/bwa); write
    C(registry.example:5000/team/bwa:latest). Names are not normalised either (C(docker.io/library/debian) is not
    C(debian)); the P(arvados.cluster.repo_tag#filter) filter gives the stored form. A name that finds nothing gets
    the hints M(arvados.cluster.arvados_docker_image) gives for it (lowercase, the stored form, C(latest) for a name
    without a tag).
  - A newer upload does not win over an image whose build time is newer, so re-tagging an older image does not make
    the server run it.
  - Image ids are the exception. Under the server's rules C(sha256:<id>) never selects that image (it is split at
    its first C(:) and falls back to the newest image of any id), so for such a term this returns the collections
    holding that id, in the server's order, as C(list_images_in_arv) does, and warns that a container request with
    that string would run a different image. Use the portable data hash it returns. Bare hex digits get the server's
    answer first (a C(docker_image_repo+tag) link named C(<hex>:latest), or the C(docker_image_hash) link of a v1 image
    whose id starts with them); only where the server finds nothing are they read as an image id, with the same
    warning.
  - The server reads C(docker_image_migration) links whatever their permissions, but a token sees only the ones it
    can read, normally only an admin's does. With another token, migration links are not followed, and a term that
    matches an image of a format the cluster does not support gets a warning that the server may follow a migration
    link this token cannot read.
  - The results agree with the first entry of C(arvados.commands.keepdocker.list_images_in_arv) where that follows the
    server. Where they differ this follows the server. C(list_images_in_arv) ignores C(dockerImageFormats) and
    migration links; places a collection with several matching links by its most preferred one rather than its
    oldest; compares times to the microsecond where the server compares whole seconds; and does not split a name at
    its first C(:).
  - Two candidates with the same image timestamp and link creation second tie, and the server picks either at random;
    this returns the one with the smaller uuid and warns.
seealso:
  - module: arvados.cluster.arvados_docker_image
  - module: arvados.cluster.arvados_docker_image_info
  - name: Arvados container requests
    description: How C(container_image) is given in a container request.
    link: https://doc.arvados.org/api/methods/container_requests.html
"""

EXAMPLES = r"""
# The connection comes from the variables arvados_api_host, arvados_api_token and arvados_api_insecure, from the
# environment (ARVADOS_API_HOST, ARVADOS_API_TOKEN, ARVADOS_API_HOST_INSECURE), the [arvados] section of ansible.cfg,
# or the options themselves.
- name: The portable data hash a container request for team/bwa:0.7.17 runs
  ansible.builtin.debug:
    msg: "{{ lookup('arvados.cluster.arvados_docker_image', 'team/bwa:0.7.17') }}"

- name: Pin several images at once, one value per term, in order
  ansible.builtin.set_fact:
    pinned_images: "{{ query('arvados.cluster.arvados_docker_image', 'team/bwa:0.7.17', 'team/samtools:1.19') }}"

- name: Collection uuids instead
  ansible.builtin.set_fact:
    image_collections: "{{ query('arvados.cluster.arvados_docker_image', 'team/bwa:0.7.17', result='uuid') }}"

- name: The whole choice, among one project's images only
  ansible.builtin.set_fact:
    bwa_choice: "{{ lookup('arvados.cluster.arvados_docker_image', 'team/bwa:0.7.17', result='all', project_uuid=images_project_uuid) }}"

- name: Which of these images the cluster holds, leaving out the others
  ansible.builtin.set_fact:
    present_images: "{{ query('arvados.cluster.arvados_docker_image', 'team/bwa:0.7.17', 'team/unknown:1.0', on_missing='skip') }}"

- name: Connect with explicit options
  ansible.builtin.debug:
    msg: >-
      {{ lookup('arvados.cluster.arvados_docker_image', 'team/bwa:0.7.17',
                api_host=arvados_api_host, api_token=arvados_api_token, api_insecure=true) }}
"""

RETURN = r"""
_raw:
  description:
    - One value per term that resolves, in the order of the terms.
    - With O(result=portable_data_hash), the portable data hash; with O(result=uuid), the collection's uuid.
    - With O(result=all), a dictionary describing the chosen collection (the keys below), with the term, how it
      matched, and every candidate in the server's order.
  type: list
  elements: raw
  contains:
    term:
      description: The term, as given.
      type: str
    matched_by:
      description:
        - What matched the term, V(docker_image_repo+tag) or V(docker_image_hash) links, or V(portable_data_hash).
      type: str
    uuid:
      description: The collection the server would run.
      type: str
      sample: zzzzz-4zz18-0123456789abcde
    portable_data_hash:
      description: Its portable data hash.
      type: str
      sample: 7f3b1e0e5d3b2e5c9c3b9e1f3a6d1c2e+1224
    image_id:
      description: The image id the collection holds (from its file name).
      type: str
      sample: sha256:be05d0e5e2b6d3c4b1a7d1e9f7c0a1b2c3d4e5f60718293a4b5c6d7e8f901234
    repo:
      description: The repository of the link that placed it, or null when a hash link or a portable data hash matched.
      type: str
    tag:
      description: The tag of that link, or null.
      type: str
    owner_uuid:
      description: The project that owns the collection.
      type: str
    image_timestamp:
      description: The image timestamp (build time) on the link that placed it, or null when it has none.
      type: str
      sample: "2026-11-26T19:56:41.294780Z"
    link_created_at:
      description: When the link that placed it was created, or null for a portable data hash.
      type: str
    migrated_from:
      description: The collection whose C(docker_image_migration) link led here, or null.
      type: str
    ambiguous:
      description: Whether another candidate with different content ties with this one to the second, so the server may run either.
      type: bool
    candidates:
      description:
        - Every candidate in the server's order, the first being the one it runs, each a dictionary with the keys
          uuid, portable_data_hash, image_id, repo, tag, owner_uuid, image_timestamp, link_created_at and migrated_from.
      type: list
      elements: dict
"""

import typing as t

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.arvados.cluster.plugins.module_utils._catalog_reader import CatalogReader
from ansible_collections.arvados.cluster.plugins.module_utils._errors import CollectionError, ImageRefError
from ansible_collections.arvados.cluster.plugins.module_utils._image_id import SHA256, full_image_id
from ansible_collections.arvados.cluster.plugins.module_utils._image_ref import split_repo_tag, stored_name_hints
from ansible_collections.arvados.cluster.plugins.module_utils._records import iso_time
from ansible_collections.arvados.cluster.plugins.module_utils._server_choice import (
    TERM_NAME,
    Candidate,
    LookupTerm,
    ServerChoice,
    hidden_migration_warning,
    parse_term,
    server_choice,
)
from ansible_collections.arvados.cluster.plugins.plugin_utils._connection import lookup_client
from ansible_collections.arvados.cluster.plugins.plugin_utils._lookup_options import reject_unknown_options

display = Display()
PLUGIN = "arvados_docker_image lookup"


class LookupModule(LookupBase):

    def run(self, terms: list[t.Any], variables: dict[str, t.Any] | None = None, **kwargs: t.Any) -> list[t.Any]:
        # The connection variables are read, templated, by lookup_connection: Ansible would type-check them raw.
        self.set_options(direct=kwargs)
        reject_unknown_options(PLUGIN, kwargs, self._options)
        result, on_missing = self.get_option("result"), self.get_option("on_missing")
        parsed = [_parse(term) for term in self._flatten(terms)]
        if not parsed:
            return []
        values = []
        for term, choice in self._read_choices(parsed, variables or {}, kwargs):
            _warn_about(term, choice)
            if choice.winner is None:
                _report_missing(term, choice, on_missing, self.get_option("project_uuid"))
            else:
                values.append(_value(term, choice, result))
        return values

    def _read_choices(self, terms: list[LookupTerm], variables: dict[str, t.Any],
                      direct: dict[str, t.Any]) -> list[tuple[LookupTerm, ServerChoice]]:
        """Every term's choice, from one client and one batched read of the cluster."""
        try:
            reader = CatalogReader(lookup_client(self, variables, direct))
            view = reader.read_view(terms, self.get_option("project_uuid"))
        except CollectionError as exc:
            raise AnsibleError(f"{PLUGIN} of {_term_list(terms)}: {exc.user_message()}") from None
        return [(term, server_choice(view, term)) for term in terms]


def _parse(term: t.Any) -> LookupTerm:
    try:
        return parse_term(term)
    except ImageRefError as exc:
        raise AnsibleError(f"{PLUGIN}: bad term: {exc}") from None


def _term_list(terms: list[LookupTerm], shown: int = 3) -> str:
    names = ", ".join(repr(term.text) for term in terms[:shown])
    return names + (f" and {len(terms) - shown} more" if len(terms) > shown else "")


def _warn_about(term: LookupTerm, choice: ServerChoice) -> None:
    if choice.read_as_image_id and choice.winner is not None:
        display.warning(_image_id_warning(term, choice))
    if choice.hidden_migration:
        display.warning(f"{PLUGIN}: {hidden_migration_warning(choice)}")
    if choice.tied_with_winner:
        tied = ", ".join(candidate.collection.uuid for candidate in choice.tied_with_winner)
        display.warning(
            f"{PLUGIN}: {term.text!r}: {choice.winner.collection.uuid} ties with {tied} (same image timestamp "  # type: ignore[union-attr]
            "and link creation second); the API server may run either"
        )


def _image_id_warning(term: LookupTerm, choice: ServerChoice) -> str:
    if term.text.startswith(SHA256):
        server = "splits it at the first ':' and runs the newest image of any id"
    else:
        server = "finds no image for this bare hex id"
    message = (
        f"{PLUGIN}: {term.text!r} is an image id; a container request with this string would run a "
        f"different image (the API server {server}). Returning the collection holding it: use its portable data hash."
    )
    image_ids = sorted({full_image_id(candidate.image_id) or candidate.image_id for candidate in choice.candidates})
    if len(image_ids) > 1:
        message += f" The prefix matches {len(image_ids)} images ({', '.join(image_ids)}); the first in the server's order is returned."
    return message


def _report_missing(term: LookupTerm, choice: ServerChoice, on_missing: str, project_uuid: str | None) -> None:
    message = f"{PLUGIN}: {term.text!r}: {choice.error}"
    if project_uuid:
        message += f" among the images of project {project_uuid}"
    message += _missing_hint(term)
    if on_missing == "error":
        raise AnsibleError(message)
    if on_missing == "warn":
        display.warning(message)


def _missing_hint(term: LookupTerm) -> str:
    """Why a name finds nothing: the server splits `host:port/repo` at the first `:`, and reads names verbatim where
    the image module stores them as Docker lists them (the same hints as the modules', from _image_ref)."""
    if term.kind != TERM_NAME:
        return ""
    repo, tag = split_repo_tag(term.text)
    if ":" in term.text and tag is None:
        return (
            f" (the API server splits a name at its first ':', so this is not read as {repo}:latest; "
            f"write {repo}:latest)"
        )
    hints = stored_name_hints(term.text)
    return f"; {'; '.join(hints)}" if hints else ""


def _value(term: LookupTerm, choice: ServerChoice, result: str) -> t.Any:
    winner = choice.winner
    if result == "uuid":
        return winner.collection.uuid
    if result == "portable_data_hash":
        return winner.portable_data_hash
    summary = _candidate_summary(winner)
    summary.update(
        term=term.text, matched_by=choice.matched_by, ambiguous=bool(choice.tied_with_winner),
        candidates=[_candidate_summary(candidate) for candidate in choice.candidates],
    )
    return summary


def _candidate_summary(candidate: Candidate) -> dict[str, t.Any]:
    link = candidate.link
    return {
        "uuid": candidate.collection.uuid,
        "portable_data_hash": candidate.portable_data_hash,
        "image_id": full_image_id(candidate.image_id),
        "repo": candidate.repo,
        "tag": candidate.tag,
        "owner_uuid": candidate.collection.owner_uuid,
        "image_timestamp": iso_time(link.image_timestamp) if link else None,
        "link_created_at": iso_time(link.created_at) if link else None,
        "migrated_from": candidate.migrated_from.uuid if candidate.migrated_from else None,
    }
