"""The lookup, the info module and the image module agree with each other and with the server's rules, on random catalogs.

For each seed a random catalog is built through the API in an emulator of this module's own: several images per
repo:tag, image timestamps equal within a second, links without one, collections with several links to one name, v1
and v2 files, two-file collections, copies, trashed collections, links whose collection a user cannot read, and
docker_image_migration links owned by the system user (and decoys owned by a project). alice, bob (who reads one of
alice's projects) and admin each read a different part of it.

Then, for each dockerImageFormats setting, one ansible-playbook run per user asks, through the collection's public
interface only:
- the lookup, `result='all', on_missing='skip'`, for every catalog name, image id prefix and `<hex>:<tag>` name (which
  the server resolves through hash links);
- the info module, no filters: the entries marked `preferred` for each name;
- the image module in check mode, with no Docker daemon, for each name in the user's project: `resolves_to`.
Each answer is compared with reference_order.py, an independent reading of the server's rules, and with the others.

A failure names seed, formats, user and term, then the reference's choice and each way's answer. The catalog's
structure depends on the seed only; link creation seconds come from the clock, so a tie may fall otherwise from run to
run. CONSISTENCY_STAGE_REF=<commit> runs the collection of that commit instead of the working tree.

Known limitation taken as given: a token sees only the migration links it can read (normally only an admin's), so the
reference follows the migration links each user reads, as the collection documents.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import time
import typing as t

import arvados
import arvados.util
import pytest

from harness.emulator import Emulator
from helpers import REPO_ROOT, ImageCollections, v1_image_file, v2_image_file
from reference_order import HASH, MIGRATION, REPO_TAG, Resolution, ServerView, parse_time, sort_key
from upstream import create_project, grant

pytestmark = pytest.mark.slow

SEEDS = (11, 23, 37, 41)
FORMAT_SETS = (("v2",), ("v1",), ("v1", "v2"))
USERS = ("alice", "bob", "admin")
IMAGES_PER_SEED = 14
LINK_ROUNDS = 3
NO_DAEMON = "unix:///nonexistent/arvados-consistency/docker.sock"
PLAYBOOK_TIMEOUT = 600
COLLECTION_PARTS = ("galaxy.yml", "meta", "plugins")
LEAKY_VARIABLE_PREFIXES = ("ARVADOS_", "DOCKER_", "ANSIBLE_")
STAGE_REF_VARIABLE = "CONSISTENCY_STAGE_REF"

# Build times: three whole seconds, each written with several fractions, so many timestamps tie in whole seconds.
BUILD_SECONDS = ("2021-05-01T12:00:00", "2021-05-01T12:00:01", "2023-02-03T04:05:06")
FRACTIONS = ("Z", ".1Z", ".5Z", ".999999999Z", ".250000Z")
OLD_BUILD = "2019-01-01T00:00:00Z"
# The owners of a seed's images (projects), and the user who creates what each one holds.
OWNERS = {"alice_own": "alice", "alice_shared": "alice", "bob_own": "bob", "admin_own": "admin"}
MODULE_PROJECT = {"alice": "alice_own", "bob": "bob_own", "admin": "admin_own"}
# Kinds of terms: catalog names (asked three ways), image ids and hash link fallbacks (asked of the lookup).
NAME, IMAGE_ID, FALLBACK = "name", "image id", "hash fallback"


def formats_id(formats: t.Sequence[str]) -> str:
    return "+".join(formats)


# ---- the random catalogs ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Image:
    hex_digits: str
    shape: str  # v1, v2, or two (a v2 file and a README: no format accepts it)
    owner: str  # a key of OWNERS
    built: str | None
    collection: dict[str, t.Any] = dataclasses.field(default_factory=dict)

    @property
    def files(self) -> tuple[str, ...]:
        if self.shape == "v1":
            return (v1_image_file(self.hex_digits),)
        if self.shape == "two":
            return (v2_image_file(self.hex_digits), "README")
        return (v2_image_file(self.hex_digits),)

    @property
    def hash_link_name(self) -> str:
        return self.hex_digits if self.shape == "v1" else f"sha256:{self.hex_digits}"


@dataclasses.dataclass
class SeedCatalog:
    """One seed's catalog: its names, image id terms and projects."""

    seed: int
    names: list[str]  # repo:tag, asked of all three ways
    id_terms: list[str]  # image ids and prefixes, asked of the lookup
    fallback_terms: list[str]  # `<hex>:<tag>` names no repo+tag link holds, for the server's hash link fallback (lookup)
    projects: dict[str, str]
    images: list[Image]


class CatalogBuilder:
    """Plans a seed's catalog with its own random generator and creates it through the API.

    Collections are made first; links come in LINK_ROUNDS rounds a second apart (the emulator sets created_at itself),
    run for every seed together, so that some links of one name are older than others in whole seconds.
    """

    def __init__(self, seed: int, makers: dict[str, ImageCollections], system_user_uuid: str) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.makers = makers
        self.system_user_uuid = system_user_uuid
        repos = [f"s{seed}/repo{n}" for n in range(3)]
        self.names = [f"{repo}:{tag}" for repo in repos for tag in ("1", "latest")][:5]
        self.names.append(f"reg{seed}.example:5000/s{seed}/app:2")
        self.projects: dict[str, str] = {}
        self.images: list[Image] = []
        self.rounds: list[list[t.Callable[[], t.Any]]] = [[] for _round in range(LINK_ROUNDS)]
        self.trash: list[str] = []

    # Planning and creating

    def create_projects(self) -> None:
        alice, bob, admin = (self.makers[user].api for user in USERS)
        self.projects = {
            "alice_own": create_project(alice, f"s{self.seed} alice"),
            "alice_shared": create_project(alice, f"s{self.seed} shared"),
            "bob_own": create_project(bob, f"s{self.seed} bob"),
            "admin_own": create_project(admin, f"s{self.seed} admin"),
        }
        bob_uuid = bob.users().current().execute()["uuid"]
        grant(alice, bob_uuid, self.projects["alice_shared"], "can_read")

    def create_collections(self) -> None:
        rng = self.rng
        for _index in range(IMAGES_PER_SEED):
            shape = rng.choices(("v2", "v1", "two"), weights=(6, 3, 1))[0]
            hex_digits = self.random_hex()
            if self.images and rng.random() < 0.25:
                # An id sharing a prefix with an earlier one, so an id prefix matches several images.
                hex_digits = rng.choice(self.images).hex_digits[:rng.choice((8, 12, 14))] + hex_digits[14:]
                hex_digits = hex_digits[:64].ljust(64, "0")
            image = self.add_image(hex_digits, shape, self.random_owner(), self.random_build_time())
            names = self.plan_links(image)
            if rng.random() < 0.2:
                # The same image (same manifest, same portable data hash) copied to another owner under the same names.
                copy = self.add_image(hex_digits, shape, self.random_owner(exclude=image.owner), image.built)
                self.plan_links(copy, names)
        for image in list(self.images):
            if image.shape != "v2" and rng.random() < 0.6:
                self.plan_migrations(image)
        for image in self.images:
            if rng.random() < 0.08:
                self.trash.append(image.collection["uuid"])

    def add_image(self, hex_digits: str, shape: str, owner: str, built: str | None) -> Image:
        image = Image(hex_digits, shape, owner, built)
        maker = self.makers[OWNERS[owner]]
        image.collection = maker.collection(*image.files, owner_uuid=self.projects[owner])
        self.images.append(image)
        return image

    def plan_links(self, image: Image, names: list[str] | None = None) -> list[str]:
        """The image's hash link and repo+tag links (random names unless given), in random rounds; returns the names."""
        rng = self.rng
        owner_uuid = self.projects[image.owner]
        maker = self.makers[OWNERS[image.owner]]
        head = image.collection["uuid"]
        self.later(maker.link, HASH, image.hash_link_name, head, owner_uuid, image.built)
        if names is None:
            names = rng.sample(self.names, rng.choice((0, 1, 1, 2, 2, 3)))
        for name in names:
            link_maker, link_owner = maker, owner_uuid
            if image.owner == "alice_own" and rng.random() < 0.2:
                link_owner = self.projects["alice_shared"]  # bob reads the link, not the collection
            elif image.owner == "admin_own" and rng.random() < 0.3:
                link_owner = self.projects["alice_own"]  # alice reads the link, not the collection
            self.later(link_maker.link, REPO_TAG, name, head, link_owner, self.link_timestamp(image))
            if rng.random() < 0.25:
                # A second link to the same name on the same collection, with another time: the oldest one counts.
                self.later(link_maker.link, REPO_TAG, name, head, link_owner, self.random_build_time())
        return names

    def plan_migrations(self, source: Image) -> None:
        """One or two migration links away from a v1 or two-file image, to a fresh v2 copy or another image."""
        rng = self.rng
        for _link in range(1 if rng.random() < 0.8 else 2):
            kind = rng.choices(("fresh", "existing", "bad"), weights=(6, 3, 1))[0]
            others = [image for image in self.images if image is not source
                      and (image.shape == "v2") == (kind == "existing")]
            if kind == "fresh" or not others:
                target = self.add_image(self.random_hex(), "v2", self.random_owner(), source.built)
                maker = self.makers[OWNERS[target.owner]]
                self.later(maker.link, HASH, target.hash_link_name, target.collection["uuid"],
                           self.projects[target.owner], source.built)
                if rng.random() < 0.5:
                    # The copy holds some of the source's names too, with an older build time, so the migration matters.
                    for name in rng.sample(self.names, 2):
                        self.later(maker.link, REPO_TAG, name, target.collection["uuid"], self.projects[target.owner], OLD_BUILD)
            else:
                target = rng.choice(others)
            owner_uuid = self.system_user_uuid if rng.random() < 0.85 else self.projects["alice_own"]
            self.later(self.makers["admin"].link, MIGRATION, "migrate_1.9_1.10", target.collection["portable_data_hash"],
                       owner_uuid, None, source.collection["portable_data_hash"])

    def later(self, function: t.Callable[..., t.Any], *args: t.Any) -> None:
        self.rounds[self.rng.randrange(LINK_ROUNDS)].append(lambda: function(*args))

    def finish(self) -> None:
        for uuid in self.trash:
            self.makers["admin"].api.collections().trash(uuid=uuid).execute()

    # Random values

    def random_hex(self) -> str:
        return f"{self.rng.randrange(16 ** 64):064x}"

    def random_owner(self, exclude: str | None = None) -> str:
        owners = [owner for owner in OWNERS if owner != exclude]
        weights = {"alice_own": 4, "alice_shared": 3, "bob_own": 3, "admin_own": 2}
        return self.rng.choices(owners, weights=[weights[owner] for owner in owners])[0]

    def random_build_time(self) -> str | None:
        if self.rng.random() < 0.15:
            return None
        return self.rng.choice(BUILD_SECONDS) + self.rng.choice(FRACTIONS)

    def link_timestamp(self, image: Image) -> str | None:
        draw = self.rng.random()
        if draw < 0.7:
            return image.built
        if draw < 0.85:
            return None
        return self.random_build_time()

    def id_terms(self) -> list[str]:
        """Bare hex prefixes (12+ digits) of v1 ids and of one v2 id, `sha256:` prefixes of v2 ids, a full id; some
        prefixes are shared by several images."""
        rng = random.Random(self.seed * 7919)
        v1 = sorted({image.hex_digits for image in self.images if image.shape == "v1"})
        v2 = sorted({image.hex_digits for image in self.images if image.shape != "v1"})
        terms = [hex_digits[:rng.choice((12, 14, 20))] for hex_digits in rng.sample(v1, min(3, len(v1)))]
        terms += [f"sha256:{hex_digits[:rng.choice((8, 12, 16))]}" for hex_digits in rng.sample(v2, min(3, len(v2)))]
        if v2:
            # A full id, and bare hex of a v2 id (the lookup's id rules find v2 images by bare hex too).
            terms += [f"sha256:{rng.choice(v2)}", rng.choice(v2)[:16]]
        return list(dict.fromkeys(terms))

    def fallback_terms(self) -> list[str]:
        """Names split at their first `:` whose repo+tag link does not exist: the server then reads hash links named
        like `<repo>%`, which v1 ids (bare hex) match and v2 ids (`sha256:` first) do not."""
        rng = random.Random(self.seed * 104729)
        by_shape = {shape: sorted({image.hex_digits for image in self.images if image.shape == shape}) for shape in ("v1", "v2")}
        terms = [f"{rng.choice(hexes)[:12]}:fallback" for hexes in by_shape.values() if hexes]
        # LIKE's wildcards and case, as the server reads them: `_` is any one character (the `:` of `sha256:`), `%` any
        # run, upper case hex matches nothing; a name starting with a wildcard reads every hash link.
        for hexes in by_shape.values():
            hex_digits = rng.choice(hexes) if hexes else "0" * 12
            terms += [f"sha256_{hex_digits[:6]}:wild", f"{hex_digits[:3]}_{hex_digits[4:9]}:wild",
                      f"{hex_digits[:2]}%{hex_digits[5:8]}:wild", f"{hex_digits[:10].upper()}:wild"]
        return list(dict.fromkeys(terms + ["_:wild", f"%{rng.choice(self.images).hex_digits[7:12]}:wild"]))

    def catalog(self) -> SeedCatalog:
        return SeedCatalog(self.seed, self.names + [f"s{self.seed}/ghost:1"], self.id_terms(), self.fallback_terms(),
                           self.projects, self.images)


def build_catalogs(makers: dict[str, ImageCollections], system_user_uuid: str) -> dict[int, SeedCatalog]:
    builders = [CatalogBuilder(seed, makers, system_user_uuid) for seed in SEEDS]
    for builder in builders:
        builder.create_projects()
        builder.create_collections()
    for index in range(LINK_ROUNDS):
        if index:
            time.sleep(1.05 - time.time() % 1)
        for builder in builders:
            for operation in builder.rounds[index]:
                operation()
    for builder in builders:
        builder.finish()
    return {builder.seed: builder.catalog() for builder in builders}


# ---- what each user reads, for the reference ----------------------------------------------------------------------

def server_view(api: t.Any, system_user_uuid: str) -> ServerView:
    def every(resource: t.Any, filters: list[t.Any], select: list[str]) -> list[dict[str, t.Any]]:
        return list(arvados.util.keyset_list_all(resource, filters=filters, select=select))
    link_fields = ["uuid", "link_class", "name", "head_uuid", "tail_uuid", "owner_uuid", "created_at", "properties"]
    links = every(api.links().list, [["link_class", "in", [HASH, REPO_TAG]]], link_fields)
    migrations = every(api.links().list, [["link_class", "=", MIGRATION]], link_fields)
    collections_ = every(api.collections().list, [], ["uuid", "portable_data_hash", "manifest_text", "is_trashed"])
    return ServerView(links, collections_, migrations, system_user_uuid)


# ---- the playbook ----------------------------------------------------------------------------------------------

PLAYBOOK = """\
- name: Ask the collection, three ways, what the cluster runs for each name
  hosts: localhost
  gather_facts: false
  vars_files:
    - {vars_file}
  tasks:
    - name: lookup
      ansible.builtin.set_fact:
        lookup_answers: "{{{{ query('arvados.cluster.arvados_docker_image', lookup_terms, result='all', on_missing='skip') }}}}"
      ignore_errors: true

    - name: info
      arvados.cluster.arvados_docker_image_info:
      ignore_errors: true

    - name: module
      arvados.cluster.arvados_docker_image:
        name: "{{{{ item.name }}}}"
        project_uuid: "{{{{ item.project_uuid }}}}"
        docker_host: {no_daemon}
      check_mode: true
      loop: "{{{{ module_items }}}}"
      ignore_errors: true
"""

# Writes the results of the tasks above to one JSON file when the run ends (a copy task would cost 1.5 s a run).
ANSWERS_CALLBACK = '''
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: consistency_answers
type: aggregate
short_description: Write the results of the consistency test's tasks to the file CONSISTENCY_ANSWERS_FILE names
description: [Write the results of the consistency test's tasks to a JSON file.]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "consistency_answers"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.answers = {}

    def _keep(self, result, status):
        self.answers[result._task.get_name()] = dict(result._result, _status=status)

    def v2_runner_on_ok(self, result):
        self._keep(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._keep(result, "failed")

    def _keep_item(self, result, status):
        self.answers.setdefault(result._task.get_name() + " items", []).append(dict(result._result, _status=status))

    def v2_runner_item_on_ok(self, result):
        self._keep_item(result, "ok")

    def v2_runner_item_on_failed(self, result):
        self._keep_item(result, "failed")

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["CONSISTENCY_ANSWERS_FILE"], "w", encoding="utf-8") as answers:
            json.dump(self.answers, answers, default=str)
'''


def stage_collection(root: pathlib.Path) -> pathlib.Path:
    """This checkout's runtime files as root/ansible_collections/arvados/cluster (a copy of its own).

    With CONSISTENCY_STAGE_REF set (a git commit, e.g. HEAD), the files of that commit instead of the working tree,
    to compare the collection before and after a change.
    """
    target = root / "ansible_collections" / "arvados" / "cluster"
    target.mkdir(parents=True)
    ref = os.environ.get(STAGE_REF_VARIABLE)
    if ref:
        archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "--format=tar", ref, *COLLECTION_PARTS],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        return root
    for part in COLLECTION_PARTS:
        source = REPO_ROOT / part
        if source.is_dir():
            shutil.copytree(source, target / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / part)
    return root


def run_playbook(workdir: pathlib.Path, stage_root: pathlib.Path, api_host: str, token: str,
                 variables: dict[str, t.Any]) -> dict[str, t.Any]:
    """One ansible-playbook run as one user; returns the answers file it wrote (task name -> result)."""
    workdir.mkdir(parents=True)
    home = workdir / "home"
    home.mkdir()
    callbacks = workdir / "callback_plugins"
    callbacks.mkdir()
    (callbacks / "consistency_answers.py").write_text(ANSWERS_CALLBACK)
    answers_file = workdir / "answers.json"
    vars_file = workdir / "vars.json"
    vars_file.write_text(json.dumps(variables))
    playbook = workdir / "playbook.yml"
    playbook.write_text(PLAYBOOK.format(vars_file=vars_file, no_daemon=NO_DAEMON))
    inventory = workdir / "inventory.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}))
    env = {name: value for name, value in os.environ.items() if not name.startswith(LEAKY_VARIABLE_PREFIXES)}
    env.update({
        "HOME": str(home), "ANSIBLE_COLLECTIONS_PATH": str(stage_root), "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(home / ".ansible" / "tmp"), "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_CALLBACK_PLUGINS": str(callbacks), "ANSIBLE_CALLBACKS_ENABLED": "consistency_answers",
        "CONSISTENCY_ANSWERS_FILE": str(answers_file),
        "ARVADOS_API_HOST": api_host, "ARVADOS_API_TOKEN": token, "ARVADOS_API_HOST_INSECURE": "1",
    })
    command = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook)]
    process = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=PLAYBOOK_TIMEOUT, check=False)
    (workdir / "output.txt").write_text(f"{process.stdout}\n{process.stderr}")
    if process.returncode != 0 or not answers_file.exists():
        raise AssertionError(f"ansible-playbook failed ({process.returncode}) in {workdir}:\n"
                             f"{process.stdout[-4000:]}\n{process.stderr[-3000:]}")
    return json.loads(answers_file.read_text())


# ---- the answers, side by side -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Answer:
    """One way's answer for one term: a collection and its portable data hash, or none, with words for messages."""

    uuid: str | None
    pdh: str | None
    text: str
    changed: bool | None = None
    candidates: tuple[str, ...] | None = None  # the lookup's candidates' portable data hashes, in its order

    @property
    def resolved(self) -> bool:
        return self.pdh is not None


NO_ANSWER = Answer(None, None, "not resolved")


def lookup_answer(entry: dict[str, t.Any] | None) -> Answer:
    if entry is None:
        return NO_ANSWER
    via = f" migrated_from={entry.get('migrated_from')}" if entry.get("migrated_from") else ""
    candidates = tuple(candidate.get("portable_data_hash") for candidate in entry.get("candidates") or [])
    return Answer(entry.get("uuid"), entry.get("portable_data_hash"),
                  f"{entry.get('uuid')} {entry.get('portable_data_hash')}{via}", candidates=candidates)


def info_answers(entries: list[dict[str, t.Any]]) -> list[Answer]:
    return [Answer(entry.get("collection_uuid"), entry.get("portable_data_hash"),
                   f"{entry.get('collection_uuid')} {entry.get('portable_data_hash')} (image_id {entry.get('image_id')})")
            for entry in entries]


def module_answer(result: dict[str, t.Any] | None) -> Answer:
    if result is None:
        return Answer(None, None, "no result")
    if result.get("_status") == "failed":
        return Answer(None, None, f"failed: {str(result.get('msg'))[:300]}")
    resolves_to = result.get("resolves_to") or {}
    warnings = [warning for warning in result.get("warnings") or [] if "Using the image the cluster" not in warning]
    text = (f"resolves_to {resolves_to.get('collection_uuid')} {resolves_to.get('portable_data_hash')}"
            f" (changed={result.get('changed')}, actions={result.get('actions')}"
            + (f", warnings={warnings}" if warnings else "") + ")")
    return Answer(resolves_to.get("collection_uuid"), resolves_to.get("portable_data_hash"), text,
                  changed=result.get("changed"))


@dataclasses.dataclass
class UserAnswers:
    """One user's answers under one formats setting, as the playbook wrote them."""

    lookup: dict[str, dict[str, t.Any]]
    lookup_error: str | None
    info: dict[tuple[str, str], list[dict[str, t.Any]]]
    info_error: str | None
    module: dict[str, dict[str, t.Any]]

    @classmethod
    def from_file(cls, answers: dict[str, t.Any]) -> UserAnswers:
        lookup = answers.get("lookup") or {}
        info = answers.get("info") or {}
        preferred: dict[tuple[str, str], list[dict[str, t.Any]]] = collections.defaultdict(list)
        for entry in info.get("images") or []:
            if entry.get("preferred"):
                preferred[(entry.get("repo"), entry.get("tag"))].append(entry)
        return cls(
            lookup={entry["term"]: entry for entry in (lookup.get("ansible_facts") or {}).get("lookup_answers") or []},
            lookup_error=_task_error(lookup),
            info=dict(preferred),
            info_error=_task_error(info),
            module={result["item"]["name"]: result for result in answers.get("module items") or []},
        )


def _task_error(result: dict[str, t.Any]) -> str | None:
    if not result:
        return "no result"
    return str(result.get("msg")) if result.get("_status") == "failed" else None


@dataclasses.dataclass(frozen=True)
class Case:
    """One term, for one user under one formats setting: the reference and each way's answer.

    A way is None when it was not asked: the info module and the image module take catalog names only; and a task
    that failed as a whole (reported on its own) is left out rather than read as "not resolved" everywhere.
    """

    seed: int
    formats: tuple[str, ...]
    user: str
    term: str
    reference: Resolution
    lookup: Answer | None
    info: tuple[Answer, ...] | None = None
    module: Answer | None = None
    kind: str = NAME

    def header(self) -> str:
        return f"seed={self.seed} formats={formats_id(self.formats)} user={self.user} term={self.term!r}"

    def problems(self) -> list[str]:
        """What disagrees, as one message naming every answer, or nothing."""
        problems = self._found_problems() if self.reference.found else self._not_found_problems()
        if not problems:
            return []
        lines = [f"{self.header()}: " + "; ".join(problems), f"    reference: {self.reference.describe()}"]
        if self.lookup is not None:
            lines.append(f"    lookup:    {self.lookup.text}")
        if self.info is not None:
            lines.append(f"    info preferred: {[answer.text for answer in self.info] or 'none'}")
        if self.module is not None:
            lines.append(f"    module:    {self.module.text}")
        return ["\n".join(lines)]

    def _found_problems(self) -> list[str]:
        problems = []
        lookup = self.lookup if self.lookup is not None and self.lookup.resolved else None
        if self.lookup is not None:
            problems += self._check_found("lookup", self.lookup)
            problems += self._check_candidates()
        if self.info is not None:
            if len(self.info) != 1:
                problems.append(f"info: {len(self.info)} entries preferred, expected exactly one")
            else:
                problems += self._check_found("info", self.info[0])
                if lookup and self.info[0].resolved and self.info[0].uuid != lookup.uuid:
                    problems.append("info and lookup name different collections")
        if self.module is not None:
            # In check mode the module may plan a copy into the project: then its collection is only predicted.
            problems += self._check_found("module", self.module, uuid_known=self.module.changed is False)
            if lookup and self.module.resolved and self.module.pdh != lookup.pdh:
                problems.append("module and lookup name different portable data hashes")
        return problems

    def _not_found_problems(self) -> list[str]:
        problems = []
        if self.lookup is not None and self.lookup.resolved:
            problems.append(f"lookup: resolves what the server does not ({self.reference.status})")
        if self.info:
            problems.append(f"info: {len(self.info)} entries preferred for a name the server does not resolve "
                            f"({self.reference.status})")
        if self.module is not None and (self.module.resolved or not self.module.text.startswith("failed")):
            problems.append(f"module: does not fail for a name the server does not resolve ({self.reference.status})")
        return problems

    def _check_found(self, way: str, answer: Answer, uuid_known: bool = True) -> list[str]:
        reference = self.reference
        if not answer.resolved:
            return [f"{way}: not resolved"]
        if answer.pdh not in reference.winner_pdhs:
            return [f"{way}: another image"]
        if uuid_known and answer.uuid not in reference.winner_uuids:
            return [f"{way}: another collection with the same content"]
        return []

    def _check_candidates(self) -> list[str]:
        """The lookup's candidates follow the server's order: each tie group's contents, duplicates counted once."""
        if self.lookup is None or self.lookup.candidates is None or not self.lookup.resolved:
            return []
        expected: list[list[str]] = []
        seen: set[str] = set()
        for group in self.reference.groups:
            pdhs = sorted({candidate.portable_data_hash for candidate in group} - seen)
            seen.update(pdhs)
            if pdhs:
                expected.append(pdhs)
        actual = list(dict.fromkeys(self.lookup.candidates))
        chunks, start = [], 0
        for group in expected:
            chunks.append(sorted(actual[start:start + len(group)]))
            start += len(group)
        if chunks != expected or start != len(actual):
            return [f"lookup: candidates {actual} out of the server's order {expected}"]
        return []


def cases_for(seed: int, formats: tuple[str, ...], user: str, catalog: SeedCatalog, view: ServerView,
              answers: UserAnswers) -> list[Case]:
    def lookup(term: str) -> Answer | None:
        return None if answers.lookup_error else lookup_answer(answers.lookup.get(term))
    cases = []
    for name in catalog.names:
        repo, _colon, tag = name.rpartition(":")
        info = None if answers.info_error else tuple(info_answers(answers.info.get((repo, tag), [])))
        cases.append(Case(seed, formats, user, name, view.resolve_name(name, formats), lookup(name), info,
                          module_answer(answers.module.get(name))))
    for term in catalog.id_terms:
        cases.append(Case(seed, formats, user, term, view.resolve_image_id(term, formats), lookup(term), kind=IMAGE_ID))
    for term in catalog.fallback_terms:
        cases.append(Case(seed, formats, user, term, view.resolve_name(term, formats), lookup(term), kind=FALLBACK))
    return cases


# ---- fixtures ---------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class World:
    emulator: Emulator
    catalogs: dict[int, SeedCatalog]
    views: dict[str, ServerView]
    answers: dict[tuple[tuple[str, ...], str], UserAnswers]
    errors: dict[tuple[tuple[str, ...], str], list[str]]
    seconds: dict[str, float]

    def cases(self, seed: int, formats: tuple[str, ...], user: str) -> list[Case]:
        return cases_for(seed, formats, user, self.catalogs[seed], self.views[user], self.answers[(formats, user)])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> t.Iterator[World]:
    started = time.monotonic()
    emulator = Emulator(tmp_path_factory.mktemp("consistency-emulator")).start()
    try:
        seconds: dict[str, float] = {}
        tokens = {user: emulator.mint_token(user, None) for user in USERS}
        apis = {user: arvados.api("v1", host=emulator.api_host, token=tokens[user], insecure=True, num_retries=2)
                for user in USERS}
        makers = {user: ImageCollections(apis[user]) for user in USERS}
        catalogs = build_catalogs(makers, emulator.system_user_uuid)
        views = {user: server_view(apis[user], emulator.system_user_uuid) for user in USERS}
        seconds["catalog"] = time.monotonic() - started
        stage_root = stage_collection(tmp_path_factory.mktemp("consistency-stage"))
        runs = tmp_path_factory.mktemp("consistency-runs")
        answers: dict[tuple[tuple[str, ...], str], UserAnswers] = {}
        errors: dict[tuple[tuple[str, ...], str], list[str]] = {}
        for formats in FORMAT_SETS:
            emulator.set_docker_image_formats(list(formats))
            before = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(len(USERS)) as pool:
                futures = {user: pool.submit(run_playbook, runs / f"{formats_id(formats)}-{user}", stage_root,
                                             emulator.api_host, tokens[user], playbook_variables(catalogs, user))
                           for user in USERS}
                for user, future in futures.items():
                    answers[(formats, user)] = UserAnswers.from_file(future.result())
                    errors[(formats, user)] = [error for error in (answers[(formats, user)].lookup_error,
                                                                   answers[(formats, user)].info_error) if error]
            seconds[f"playbooks {formats_id(formats)}"] = time.monotonic() - before
        seconds["total"] = time.monotonic() - started
        yield World(emulator, catalogs, views, answers, errors, seconds)
    finally:
        emulator.stop()


def playbook_variables(catalogs: dict[int, SeedCatalog], user: str) -> dict[str, t.Any]:
    return {
        "lookup_terms": [term for catalog in catalogs.values()
                         for term in catalog.names + catalog.id_terms + catalog.fallback_terms],
        "module_items": [{"name": name, "project_uuid": catalog.projects[MODULE_PROJECT[user]]}
                         for catalog in catalogs.values() for name in catalog.names],
    }


# ---- the tests --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("formats", FORMAT_SETS, ids=formats_id)
@pytest.mark.parametrize("seed", SEEDS, ids=lambda seed: f"seed{seed}")
def test_lookup_info_and_module_agree_with_the_server(seed, formats, user, world):
    cases = world.cases(seed, formats, user)
    problems = [f"a task failed as a whole, its answers are left out: {error}" for error in world.errors[(formats, user)]]
    problems += [problem for case in cases for problem in case.problems()]
    assert not problems, (f"seed={seed} formats={formats_id(formats)} user={user}: {len(problems)} problems over {len(cases)} terms "
                          f"(reproduce with this seed):\n" + "\n".join(problems))


def test_the_catalogs_hold_every_kind_of_case(world):
    """The random catalogs are worth comparing: each kind of choice the rules know occurs somewhere."""
    kinds: collections.Counter[str] = collections.Counter()
    cases = []
    for seed in SEEDS:
        for formats in FORMAT_SETS:
            winners: dict[str, set[str]] = {}
            for user in USERS:
                for case in world.cases(seed, formats, user):
                    cases.append(case)
                    kinds.update(case_kinds(case, world.views[user]))
                    if case.kind == NAME:
                        winners.setdefault(case.term, set()).add(case.reference.describe())
            kinds["users see different winners"] += sum(len(seen) > 1 for seen in winners.values())
        for user in USERS:
            for name in world.catalogs[seed].names:
                described = {world.views[user].resolve_name(name, formats).describe() for formats in FORMAT_SETS}
                kinds["formats change the winner"] += len(described) > 1
    wanted = {"name: found", "name: not found", "name: incompatible", "image id: found", "hash fallback: found",
              "hash fallback: not found", "migrated winner", "tie in whole seconds", "oldest link decides", "several candidates",
              "id prefix with several images", "users see different winners", "formats change the winner",
              "same content in several collections"}
    assert wanted <= set(kinds), f"kinds missing from the catalogs: {sorted(wanted - set(kinds))}; seen: {dict(kinds)}"
    by_kind = collections.Counter(case.kind for case in cases)
    answers = sum(1 + (case.info is not None) + (case.module is not None) for case in cases)
    seconds = {step: round(value, 1) for step, value in world.seconds.items()}
    print(f"\n{len(cases)} cases, {answers} answers compared ({dict(by_kind)}); kinds: {dict(sorted(kinds.items()))};"
          f" seconds: {seconds}")


def case_kinds(case: Case, view: ServerView) -> set[str]:
    reference = case.reference
    kinds = {f"{case.kind}: {reference.status}"}
    if not reference.found:
        return kinds
    if reference.migrated:
        kinds.add("migrated winner")
    if len(reference.winner_pdhs) > 1:
        kinds.add("tie in whole seconds")
    candidates = [candidate for group in reference.groups for candidate in group]
    uuids = {uuid for candidate in candidates for uuid in candidate.uuids}
    if len({candidate.portable_data_hash for candidate in candidates}) < len(uuids):
        kinds.add("same content in several collections")
    if len(candidates) > 1:
        kinds.add({NAME: "several candidates", IMAGE_ID: "id prefix with several images"}.get(case.kind, "several hash links"))
    if case.kind == NAME and oldest_link_decides(case.term, view):
        kinds.add("oldest link decides")
    return kinds


def oldest_link_decides(name: str, view: ServerView) -> bool:
    """Whether keying each collection by its best matching link, rather than its oldest, would put another one first."""
    links = [row for row in view.repo_tag_links if row["name"] == name]
    oldest: dict[str, tuple[int, int]] = {}
    best: dict[str, tuple[int, int]] = {}
    for row in sorted(links, key=lambda row: parse_time(row["created_at"])):
        oldest.setdefault(row["head_uuid"], sort_key(row))
        best[row["head_uuid"]] = min(best.get(row["head_uuid"], sort_key(row)), sort_key(row))
    return bool(oldest) and min(oldest, key=lambda uuid: (oldest[uuid], uuid)) != min(best, key=lambda uuid: (best[uuid], uuid))


@pytest.mark.parametrize("way", ["lookup", "info", "module"])
def test_a_wrong_answer_is_caught(way, world):
    """The comparison is not vacuous: in every agreeing case, one way's answer swapped for the next image in the
    server's order (another content) is reported, naming that way."""
    swapped_cases, missed = 0, []
    for seed in SEEDS:
        for formats in FORMAT_SETS:
            for user in USERS:
                for case in world.cases(seed, formats, user):
                    other = other_image(case)
                    if case.kind != NAME or other is None or getattr(case, way) is None or case.problems():
                        continue
                    candidates = case.lookup.candidates if case.lookup else None
                    swapped = dataclasses.replace(other, text=f"swapped: {other.text}", candidates=candidates)
                    perturbed = dataclasses.replace(case, **{way: (swapped,) if way == "info" else swapped})
                    problems = perturbed.problems()
                    swapped_cases += 1
                    if not (problems and f"{way}: another image" in problems[0] and "swapped" in problems[0]):
                        missed.append(perturbed.header())
    assert swapped_cases >= 20, f"only {swapped_cases} agreeing cases with a second image to swap in"
    assert not missed, f"a swapped {way} answer went unnoticed in: {missed}"


def other_image(case: Case) -> Answer | None:
    if not case.reference.found:
        return None
    for group in case.reference.groups[1:]:
        for candidate in group:
            if candidate.portable_data_hash not in case.reference.winner_pdhs:
                uuid = sorted(candidate.uuids)[0]
                return Answer(uuid, candidate.portable_data_hash, f"{uuid} {candidate.portable_data_hash}", changed=False)
    return None
