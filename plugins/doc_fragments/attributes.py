# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Attributes declared by the collection's modules."""

from __future__ import annotations


class ModuleDocFragment:
    # Standard documentation fragment.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
"""

    # Modules in the arvados action group.
    ACTIONGROUP_ARVADOS = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/arvados.cluster.arvados) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - arvados.cluster.arvados
"""

    # Modules whose action plugin fills the connection from variables and runs their code in the controller for local tasks.
    CONTROLLER_ACTION = r"""
options: {}
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
    details:
      - The action plugin fills the connection options from the C(arvados_api_*) variables, templated.
      - On the controller with its own Python, it runs the module's code in the task process.
"""

    # Modules that only read.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
"""
