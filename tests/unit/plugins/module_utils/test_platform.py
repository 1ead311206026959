# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""Unit tests of platforms: parsing what the user wrote, matching, choosing one image of an index."""

from __future__ import annotations

import pytest

from ansible_collections.arvados.cluster.plugins.module_utils import _platform as platform
from ansible_collections.arvados.cluster.plugins.module_utils._errors import ArchiveError, ImageSourceError


def test_parse_platform_and_match():
    assert platform.parse_platform("linux/x86_64") == ("linux", "amd64", None)
    assert platform.parse_platform("linux/arm64/v8") == ("linux", "arm64", "v8")
    assert platform.platform_matches("linux", "aarch64", "v8", ("linux", "arm64", None))
    assert not platform.platform_matches("linux", "arm64", "v7", ("linux", "arm64", "v8"))
    with pytest.raises(ImageSourceError, match="os/architecture"):
        platform.parse_platform("amd64")


def test_select_platform_descriptor_ignores_attestations_and_needs_a_choice():
    amd64 = {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "amd64"}}
    arm64 = {"digest": "sha256:b", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
    attestation = {"digest": "sha256:c", "platform": {"os": "unknown", "architecture": "unknown"},
                   "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
    assert platform.select_platform_descriptor([amd64, attestation], None, "p") is amd64
    assert platform.select_platform_descriptor([amd64, arm64, attestation], ("linux", "arm64", None), "p") is arm64
    with pytest.raises(ArchiveError, match=r"several platforms \(linux/amd64, linux/arm64/v8\)"):
        platform.select_platform_descriptor([amd64, arm64, attestation], None, "p")
    with pytest.raises(ArchiveError, match="no image for linux/s390x"):
        platform.select_platform_descriptor([amd64, arm64], ("linux", "s390x", None), "p")
