# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) 2026, arvados.cluster contributors
"""The SDK client as `list_images_in_arv` sees it, keeping the links and collections its own reads return.

`list_images_in_arv` reads image links in full and then the listed collections' uuids. Through `ListingCapture` the
collection read also asks for the fields the catalog needs, so the listing's requests are the catalog's read too:
nothing it returned is read a second time. A read filtered by an empty `in` list (the listing asks for the tags and
collections of no image when it found none) matches nothing, and is answered here with an empty page.

Private to the collection: its interface may change without notice.
"""

from __future__ import annotations

import typing as t


class ListingCapture:
    """Delegates to an SDK client; `links` and `collections` list reads keep their rows, by uuid."""

    def __init__(self, api: t.Any, collection_fields: t.Sequence[str]) -> None:
        self._api = api
        self._collection_fields = tuple(collection_fields)
        self.links_read: dict[str, dict[str, t.Any]] = {}
        self.collections_read: dict[str, dict[str, t.Any]] = {}

    def links(self) -> _CapturedResource:
        return _CapturedResource(self._api.links(), self.links_read, ())

    def collections(self) -> _CapturedResource:
        return _CapturedResource(self._api.collections(), self.collections_read, self._collection_fields)

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self._api, name)


class _CapturedResource:
    def __init__(self, resource: t.Any, rows: dict[str, dict[str, t.Any]], wider_select: tuple[str, ...]) -> None:
        self._resource = resource
        self._rows = rows
        self._wider_select = wider_select

    def list(self, **kwargs: t.Any) -> t.Any:
        if matches_nothing(kwargs.get("filters") or ()):
            return _EmptyPage()
        if self._wider_select and "select" in kwargs:
            kwargs["select"] = sorted({*kwargs["select"], *self._wider_select})
        return _CapturedRequest(self._resource.list(**kwargs), self._rows)

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self._resource, name)


class _CapturedRequest:
    def __init__(self, request: t.Any, rows: dict[str, dict[str, t.Any]]) -> None:
        self._request = request
        self._rows = rows

    def execute(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        page = self._request.execute(*args, **kwargs)
        self._rows.update((row["uuid"], dict(row)) for row in page.get("items", ()))
        return page


class _EmptyPage:
    """The page the API server answers to a read that matches nothing."""

    def execute(self, *_args: t.Any, **_kwargs: t.Any) -> dict[str, t.Any]:
        return {"items": [], "items_available": 0}


def matches_nothing(filters: t.Iterable[t.Any]) -> bool:
    """Whether one of the filters is `[attribute, "in", []]`, which no record satisfies."""
    return any(isinstance(condition, (list, tuple)) and len(condition) == 3 and condition[1] == "in" and condition[2] == []
               for condition in filters)
