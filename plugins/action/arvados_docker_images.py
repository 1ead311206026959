# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Action plugin for arvados.cluster.arvados_docker_images: the connection from the variables, and the module's code
run in the controller when the task runs there anyway (see plugin_utils/_controller_action.py)."""

from __future__ import annotations

from ansible_collections.arvados.cluster.plugins.plugin_utils._controller_action import ControllerAction, ModuleCode

try:
    from ansible_collections.arvados.cluster.plugins.module_utils._arvados import ARVADOS_IMPORT_ERROR
    from ansible_collections.arvados.cluster.plugins.module_utils._image_batch import argument_spec, ensure_images
except ImportError as exc:  # the module, shipped to the host, reports what is missing there
    MODULE_CODE = ModuleCode.unavailable(exc)
else:
    MODULE_CODE = ModuleCode(argument_spec, ensure_images, import_error=ARVADOS_IMPORT_ERROR)


class ActionModule(ControllerAction):
    module_code = MODULE_CODE
    reads_source_cluster = True
