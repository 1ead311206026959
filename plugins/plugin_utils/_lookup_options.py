# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Keyword options of the collection's lookups: one the lookup does not take is an error, not silently ignored.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import difflib
import typing as t

from ansible.errors import AnsibleError


def reject_unknown_options(plugin_name: str, given: t.Iterable[str], known: t.Iterable[str]) -> None:
    """Fail on the first option in `given` that is not in `known`, naming it and the closest known one."""
    known = sorted(set(known) - {"_terms"})
    for name in sorted(set(given) - set(known)):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise AnsibleError(f"{plugin_name}: unknown option {name!r}: {hint}the options are {', '.join(known)}")
