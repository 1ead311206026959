# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The one connection precedence, on the controller: options, then the arvados_* variables templated by a real
Templar, then the environment (through the module's fallbacks or the lookup's configuration).

Variables are marked trusted as a playbook's, inventory's or vars file's values are: ansible-core 2.19 and later
template only those.
"""

from __future__ import annotations

import sys
import typing as t

import pytest
import yaml
from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.lookup import LookupBase
from ansible.template import Templar, trust_as_template

from ansible_collections.arvados.cluster.plugins.doc_fragments.arvados import ModuleDocFragment
from ansible_collections.arvados.cluster.plugins.module_utils import _arvados
from ansible_collections.arvados.cluster.plugins.module_utils._arvados import (
    ARVADOS_CONNECTION_SPEC,
    ArvadosClient,
    ConnectionOptions,
    connection_options,
)
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArvadosClientError, OptionError
from ansible_collections.arvados.cluster.plugins.plugin_utils._connection import (
    CONNECTION_VARIABLES,
    connection_values,
    lookup_connection,
)

VAULT_TOKEN = "v2/zzzzz-gj3su-000000000000001/tokenfromthevault"
ENV_TOKEN = "v2/zzzzz-gj3su-000000000000002/tokenfromtheenvironment"
OPTION_TOKEN = "v2/zzzzz-gj3su-000000000000003/tokenfromtheoption"
ARVADOS_ENVIRONMENT = ("ARVADOS_API_HOST", "ARVADOS_API_TOKEN", "ARVADOS_API_HOST_INSECURE")


def play_variables(**variables: t.Any) -> dict[str, t.Any]:
    """Variables as a play holds them: strings from YAML are trusted as templates."""
    return {name: trust_as_template(value) if isinstance(value, str) else value for name, value in variables.items()}


def templar_of(variables: dict[str, t.Any]) -> Templar:
    return Templar(loader=DataLoader(), variables=variables)


@pytest.fixture(autouse=True)
def no_arvados_environment(monkeypatch) -> None:
    for name in ARVADOS_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


# ---- connection_values: options, then templated variables ------------------------------------------------------


def test_a_variable_that_refers_to_another_is_templated() -> None:
    variables = play_variables(vault_token=VAULT_TOKEN, arvados_api_token="{{ vault_token }}")
    assert connection_values({}, variables, templar_of(variables)) == {"api_token": VAULT_TOKEN}


def test_templating_follows_a_chain_of_variables() -> None:
    variables = play_variables(vault_token=VAULT_TOKEN, team_token="{{ vault_token }}", arvados_api_token="{{ team_token }}",
                               cluster="zzzzz", arvados_api_host="{{ cluster }}.example.org:8000")
    values = connection_values({}, variables, templar_of(variables))
    assert values == {"api_token": VAULT_TOKEN, "api_host": "zzzzz.example.org:8000"}


def test_every_option_has_its_variable_typed_as_the_option() -> None:
    variables = play_variables(arvados_api_host="zzzzz.example.org", arvados_api_token=VAULT_TOKEN, arvados_api_insecure="{{ 'yes' }}",
                               arvados_num_retries="{{ 1 + 2 }}", arvados_api_timeout="7")
    values = connection_values({}, variables, templar_of(variables))
    assert values == {"api_host": "zzzzz.example.org", "api_token": VAULT_TOKEN, "api_insecure": True, "num_retries": 3, "api_timeout": 7}
    assert set(CONNECTION_VARIABLES) == set(ARVADOS_CONNECTION_SPEC)


def test_options_beat_variables() -> None:
    variables = play_variables(vault_token=VAULT_TOKEN, arvados_api_token="{{ vault_token }}", arvados_num_retries="9")
    values = connection_values({"api_token": OPTION_TOKEN, "num_retries": 0}, variables, templar_of(variables))
    assert values == {"api_token": OPTION_TOKEN, "num_retries": 0}


def test_a_null_option_or_variable_counts_as_not_set() -> None:
    variables = play_variables(arvados_api_token=VAULT_TOKEN, arvados_api_host=None)
    assert connection_values({"api_token": None, "api_host": None}, variables, templar_of(variables)) == {"api_token": VAULT_TOKEN}


def test_an_empty_option_is_set() -> None:
    """An explicit empty value is not replaced: the task said so, and is told that no host is set."""
    variables = play_variables(arvados_api_host="zzzzz.example.org")
    assert connection_values({"api_host": ""}, variables, templar_of(variables)) == {"api_host": ""}


def test_no_options_and_no_variables_leave_every_option_to_the_next_sources() -> None:
    assert connection_values({}, {}, templar_of({})) == {}
    assert connection_values({}, None, templar_of({})) == {}


def test_an_untrusted_value_is_data_not_a_template() -> None:
    """A value from a module's result or the environment is not templated (ansible-core 2.19+ trusts only playbook text)."""
    variables = {"inner": trust_as_template(VAULT_TOKEN), "arvados_api_token": "{{ inner }}"}
    assert connection_values({}, variables, templar_of(variables)) == {"api_token": "{{ inner }}"}


def test_a_variable_that_does_not_template_fails_naming_it_and_not_its_value() -> None:
    variables = play_variables(arvados_api_token="{{ undefined_vault_token }}" + VAULT_TOKEN)
    with pytest.raises(AnsibleError, match="the variable arvados_api_token cannot be templated") as raised:
        connection_values({}, variables, templar_of(variables))
    assert "undefined_vault_token" in str(raised.value)
    assert VAULT_TOKEN.rsplit("/", 1)[-1] not in str(raised.value)


def test_a_variable_of_the_wrong_type_fails_naming_it() -> None:
    variables = play_variables(arvados_num_retries="many")
    with pytest.raises(AnsibleError, match="the variable arvados_num_retries must be a int, the type of the option num_retries"):
        connection_values({}, variables, templar_of(variables))


# ---- modules: the action plugin's values, then the module's environment fallbacks ---------------------------------


def module_params(task_args: dict[str, t.Any], variables: dict[str, t.Any]) -> dict[str, t.Any]:
    """What the module validates: the task's arguments completed by the action plugin, then its fallbacks."""
    module_args = dict(task_args)
    module_args.update(connection_values(module_args, variables, templar_of(variables)))
    validation = ArgumentSpecValidator(ARVADOS_CONNECTION_SPEC).validate(module_args)
    assert not validation.error_messages
    return validation.validated_parameters


def test_for_a_module_variables_beat_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("ARVADOS_API_TOKEN", ENV_TOKEN)
    monkeypatch.setenv("ARVADOS_API_HOST", "env.example.org")
    variables = play_variables(vault_token=VAULT_TOKEN, arvados_api_token="{{ vault_token }}")
    params = module_params({}, variables)
    assert params["api_token"] == VAULT_TOKEN
    assert params["api_host"] == "env.example.org"


def test_for_a_module_options_beat_variables_and_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("ARVADOS_API_TOKEN", ENV_TOKEN)
    variables = play_variables(arvados_api_token=VAULT_TOKEN)
    assert module_params({"api_token": OPTION_TOKEN}, variables)["api_token"] == OPTION_TOKEN


def test_for_a_module_without_variables_the_environment_answers(monkeypatch) -> None:
    monkeypatch.setenv("ARVADOS_API_TOKEN", ENV_TOKEN)
    monkeypatch.setenv("ARVADOS_API_HOST_INSECURE", "1")
    params = module_params({}, play_variables(unrelated="x"))
    assert params["api_token"] == ENV_TOKEN
    assert params["api_insecure"] is True
    assert params["num_retries"] == 5


# ---- lookups: options, variables, then the environment through the plugin's configuration --------------------------


class LookupModule(LookupBase):
    """A lookup with the collection's connection options, from the doc fragments as a lookup extends them."""

    def run(self, terms: list[t.Any], variables: dict[str, t.Any] | None = None, **kwargs: t.Any) -> list[t.Any]:
        self.set_options(direct=kwargs)
        return [lookup_connection(self, variables, kwargs)]


def plugin_options() -> dict[str, t.Any]:
    """The options of a lookup that extends arvados.cluster.arvados and arvados.cluster.arvados.plugins."""
    options = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    for name, sources in yaml.safe_load(ModuleDocFragment.PLUGINS)["options"].items():
        options[name].update(sources)
    return options


def lookup(variables: dict[str, t.Any], **kwargs: t.Any) -> ConnectionOptions:
    plugin = LookupModule(loader=DataLoader(), templar=templar_of(variables))
    plugin._load_name = "arvados_cluster_test_connection"  # pylint: disable=protected-access
    C.config.initialize_plugin_configuration_definitions("lookup", plugin._load_name, plugin_options())  # pylint: disable=protected-access
    return plugin.run([], variables, **kwargs)[0]


def test_the_plugins_fragment_adds_sources_only() -> None:
    for name, sources in yaml.safe_load(ModuleDocFragment.PLUGINS)["options"].items():
        assert set(sources) <= {"env", "ini", "vars"}, name
        assert sources["vars"] == [{"name": CONNECTION_VARIABLES[name]}]


def test_for_a_lookup_a_templated_variable_gives_the_token(monkeypatch) -> None:
    monkeypatch.setenv("ARVADOS_API_HOST", "env.example.org")
    variables = play_variables(vault_token=VAULT_TOKEN, arvados_api_token="{{ vault_token }}", arvados_num_retries="{{ 2 }}")
    options = lookup(variables)
    assert (options.api_host, options.api_token, options.num_retries, options.api_timeout) == ("env.example.org", VAULT_TOKEN, 2, 20)


def test_for_a_lookup_options_beat_variables(monkeypatch) -> None:
    monkeypatch.setenv("ARVADOS_API_TOKEN", ENV_TOKEN)
    variables = play_variables(arvados_api_host="vars.example.org", arvados_api_token=VAULT_TOKEN, arvados_api_insecure=False)
    options = lookup(variables, api_host="option.example.org", api_token=OPTION_TOKEN, api_insecure="yes")
    assert (options.api_host, options.api_token, options.api_insecure) == ("option.example.org", OPTION_TOKEN, True)


def test_for_a_lookup_variables_beat_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("ARVADOS_API_HOST", "env.example.org")
    monkeypatch.setenv("ARVADOS_API_TOKEN", ENV_TOKEN)
    monkeypatch.setenv("ARVADOS_API_HOST_INSECURE", "1")
    variables = play_variables(vault_token=VAULT_TOKEN, arvados_api_token="{{ vault_token }}", arvados_api_insecure="false")
    options = lookup(variables)
    assert (options.api_host, options.api_token, options.api_insecure) == ("env.example.org", VAULT_TOKEN, False)


def test_for_a_lookup_without_options_or_variables_the_environment_answers(monkeypatch) -> None:
    monkeypatch.setenv("ARVADOS_API_HOST", "env.example.org")
    monkeypatch.setenv("ARVADOS_API_TOKEN", ENV_TOKEN)
    monkeypatch.setenv("ARVADOS_API_HOST_INSECURE", "1")
    options = lookup(play_variables(unrelated="x"))
    assert (options.api_host, options.api_token, options.api_insecure, options.num_retries) == ("env.example.org", ENV_TOKEN, True, 5)


def test_for_a_lookup_with_nothing_set_the_error_says_where_to_set_it() -> None:
    with pytest.raises(ArvadosClientError, match="no Arvados API host: set api_host [(]or the variable arvados_api_host[)], or ARVADOS_API_HOST"):
        lookup({})


# ---- connection_options: the one constructor, and the settings file last ------------------------------------------


def test_connection_options_take_what_the_sources_give_and_default_the_rest() -> None:
    given = {"api_host": "zzzzz.example.org/", "api_token": f" {VAULT_TOKEN} ", "api_insecure": "yes"}
    options = connection_options(given.get)
    assert (options.api_host, options.api_token, options.api_insecure, options.num_retries, options.api_timeout) == (
        "zzzzz.example.org", VAULT_TOKEN, True, 5, 20)
    assert VAULT_TOKEN not in repr(options)


def test_connection_options_fall_back_to_the_settings_file(monkeypatch) -> None:
    settings = {"ARVADOS_API_HOST": "settings.example.org", "ARVADOS_API_TOKEN": VAULT_TOKEN, "ARVADOS_API_HOST_INSECURE": "true"}
    monkeypatch.setattr(_arvados, "_settings_file_value", settings.get)
    options = connection_options({"num_retries": 0}.get)
    assert (options.api_host, options.api_token, options.api_insecure, options.num_retries) == ("settings.example.org", VAULT_TOKEN, True, 0)


def test_a_count_that_is_not_a_number_is_an_option_error() -> None:
    with pytest.raises(OptionError, match="num_retries: 'many' is not a whole number"):
        connection_options({"api_host": "zzzzz.example.org", "api_token": VAULT_TOKEN, "num_retries": "many"}.get)


def test_without_the_sdk_the_error_names_this_python_and_how_to_install_it_there(monkeypatch) -> None:
    monkeypatch.setattr(_arvados, "ARVADOS_IMPORT_ERROR", ImportError("No module named 'arvados'"))
    with pytest.raises(ArvadosClientError) as raised:
        ArvadosClient(ConnectionOptions(api_host="zzzzz.example.org", api_token=VAULT_TOKEN))
    message = str(raised.value)
    assert message.startswith("the arvados-python-client library is required")
    assert f"{sys.executable} cannot import it (No module named 'arvados')" in message
    assert f"`{sys.executable} -m pip install arvados-python-client`" in message
