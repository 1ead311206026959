# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The controller's side of the one connection precedence: options, then the templated arvados_* variables.

Lookups and the modules' action plugins run here, where the play's variables are. Both take the connection options a
task or a lookup call gives, else the variables `arvados_api_host`, `arvados_api_token`, `arvados_api_insecure`,
`arvados_num_retries` and `arvados_api_timeout` (and, for the image module with `source: arvados`, the source cluster's
`arvados_source_api_host|token|insecure`), templated: a variable holding `{{ vault_token }}` or a vaulted value
gives the token itself. What neither sets comes from the environment (and, for a lookup, ansible.cfg), then from the
settings file, in `_arvados.connection_options`. The doc fragment arvados.cluster.arvados writes the order down once.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import os
import typing as t

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.common.validation import check_type_bool, check_type_int, check_type_str

from ansible_collections.arvados.cluster.plugins.module_utils._arvados import (
    ARVADOS_CONNECTION_SPEC,
    ArvadosClient,
    ConnectionOptions,
    connection_options,
)

# Each connection option, and the variable that sets it when the task or the lookup call does not.
CONNECTION_VARIABLES: dict[str, str] = {
    "api_host": "arvados_api_host",
    "api_token": "arvados_api_token",
    "api_insecure": "arvados_api_insecure",
    "num_retries": "arvados_num_retries",
    "api_timeout": "arvados_api_timeout",
}

# The image module's source cluster (source: arvados): each option and the variable that sets it.
SOURCE_CONNECTION_VARIABLES: dict[str, str] = {
    "source_api_host": "arvados_source_api_host",
    "source_api_token": "arvados_source_api_token",
    "source_api_insecure": "arvados_source_api_insecure",
}

_TYPE_CHECKS: dict[str, t.Callable[[t.Any], t.Any]] = {"str": check_type_str, "bool": check_type_bool, "int": check_type_int}


class TemplarLike(t.Protocol):
    """What this needs of ansible.template.Templar: templating one value with the play's variables."""

    def template(self, variable: t.Any) -> t.Any:
        """The value, templated; a string not trusted as a template comes back as it is."""


def connection_values(given: t.Mapping[str, t.Any], variables: t.Mapping[str, t.Any] | None, templar: TemplarLike,
                      option_variables: t.Mapping[str, str] | None = None) -> dict[str, t.Any]:
    """The connection options given (not null) as they are, else each one's arvados_* variable, templated and typed.

    Options neither sets are left out, for the next sources to answer. `option_variables` are the options and their
    variables (the source cluster's: SOURCE_CONNECTION_VARIABLES).
    """
    values: dict[str, t.Any] = {}
    for option, variable in (option_variables or CONNECTION_VARIABLES).items():
        if given.get(option) is not None:
            values[option] = given[option]
        elif variables is not None and variable in variables:
            value = _templated(variable, variables[variable], templar)
            if value is not None:
                values[option] = _typed(option, variable, value)
    return values


def lookup_connection(plugin: t.Any, variables: t.Mapping[str, t.Any] | None, direct: t.Mapping[str, t.Any]) -> ConnectionOptions:
    """A lookup's connection: its keyword options, the templated variables, the environment and ansible.cfg, the settings file.

    `direct` holds the lookup's keyword arguments, `variables` what `run()` received. The plugin's own options (set by
    `set_options(direct=kwargs)`) type the keyword values; the environment and ansible.cfg are read from the plugin's
    configuration with no variables, since the variables it would read there are not templated.
    """
    given = {option: plugin.get_option(option) for option in CONNECTION_VARIABLES if direct.get(option) is not None}
    values = connection_values(given, variables, plugin._templar)  # pylint: disable=protected-access

    def get(option: str) -> t.Any:
        if option in values:
            return values[option]
        return C.config.get_config_value(option, plugin_type=plugin.plugin_type, plugin_name=plugin._load_name)  # pylint: disable=protected-access

    return connection_options(get)


# The lookups' clients, one per connection and process: the lookups of one task share one, which reads the discovery
# document and the cluster's configuration once. Keyed by process too, as a forked worker must not use its parent's
# connections.
_LOOKUP_CLIENTS: dict[tuple[int, ConnectionOptions], ArvadosClient] = {}


def lookup_client(plugin: t.Any, variables: t.Mapping[str, t.Any] | None, direct: t.Mapping[str, t.Any]) -> ArvadosClient:
    """The client for a lookup's connection (lookup_connection), shared with the process's other lookups of the same."""
    key = (os.getpid(), lookup_connection(plugin, variables, direct))
    if key not in _LOOKUP_CLIENTS:
        _LOOKUP_CLIENTS[key] = ArvadosClient(key[1])
    return _LOOKUP_CLIENTS[key]


def _templated(variable: str, value: t.Any, templar: TemplarLike) -> t.Any:
    try:
        return templar.template(value)
    except AnsibleError as exc:
        # The value may be a token written in with a typo: the message must not show it.
        message = exc.message
        if isinstance(value, str):
            for secret in (value, value.rsplit("/", 1)[-1]):
                if len(secret) >= 8:
                    message = message.replace(secret, "********")
        raise AnsibleError(f"the variable {variable} cannot be templated: {message}") from None


def _typed(option: str, variable: str, value: t.Any) -> t.Any:
    spec = ARVADOS_CONNECTION_SPEC[option.removeprefix("source_")]
    expected = spec["type"]
    try:
        return _TYPE_CHECKS[expected](value)
    except (TypeError, ValueError) as exc:
        reason = "" if spec.get("no_log") else f": {exc}"
        raise AnsibleError(f"the variable {variable} must be a {expected}, the type of the option {option}{reason}") from None
