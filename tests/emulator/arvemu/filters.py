"""Arvados list parameters (filters, where, order, select) compiled to SQLite, with the server's rules and messages.

The rules follow services/api/lib/record_filters.rb, load_param.rb and application_controller.rb.
Messages are those of the ArgumentError the server raises; callers wrap them.
"""
from __future__ import annotations

import dataclasses
import json
import re
import typing as t

from . import ids, timestamps

STRING, TEXT, DATETIME, INTEGER, BOOLEAN, JSONB_HASH, JSONB_ARRAY = (
    "string", "text", "datetime", "integer", "boolean", "jsonb_hash", "jsonb_array")
JSONB_TYPES = (JSONB_HASH, JSONB_ARRAY)
_ORDERABLE_ATTR = re.compile(r"^[a-z][_a-z0-9]+$")
_EXPRESSION = re.compile(r"^ *\( *(\w+) *(<=?|>=?|=) *(\w+) *\) *$")
_TRUE_WORDS = ("1", "t", "true", "y", "yes")
LONG_LIST = 100
_FALSE_WORDS = ("0", "f", "false", "n", "no")
_MODEL_CLASSES = (
    "ApiClientAuthorization", "AuthorizedKey", "Collection", "Container", "ContainerRequest", "Credential",
    "Group", "KeepService", "Link", "Log", "User", "UserAgreement", "VirtualMachine", "Workflow")


class FilterError(ValueError):
    """An invalid list parameter; the message is the server's."""


@dataclasses.dataclass(frozen=True)
class TableShape:
    """What the filter compiler needs to know about a table."""
    table: str
    class_name: str
    columns: t.Mapping[str, str]
    unsearchable: frozenset[str] = frozenset()
    full_text_excluded: frozenset[str] = frozenset()

    def searchable(self, operator: str) -> list[str]:
        text_only = not re.search(r"[<=>]", operator) and operator not in ("in", "not in")
        found = []
        for name, kind in self.columns.items():
            if name in self.unsearchable:
                continue
            if kind in (STRING, TEXT) or (kind in (DATETIME, INTEGER, BOOLEAN) and not text_only):
                found.append(name)
        return found

    def any_searchable(self, operator: str) -> list[str]:
        return [name for name in self.searchable(operator) if self.columns[name] != DATETIME]


@dataclasses.dataclass
class Condition:
    sql: str
    params: list

    def __bool__(self) -> bool:
        return bool(self.sql)


def ruby_class(value: t.Any) -> str:
    if value is None:
        return "NilClass"
    if isinstance(value, bool):
        return "TrueClass" if value else "FalseClass"
    return {int: "Integer", float: "Float", str: "String", list: "Array", dict: "ActionController::Parameters"}.get(
        type(value), type(value).__name__)


def ruby_inspect(value: t.Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(ruby_inspect(element) for element in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)}=>{ruby_inspect(element)}" for key, element in value.items()) + "}"
    return str(value)


def ruby_to_s(value: t.Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return ruby_inspect(value)
    return str(value)


def _quote(column: str) -> str:
    return f'"{column}"'


def class_for_kind(kind: t.Any) -> str | None:
    """ArvadosModel.kind_class: "arvados#collection" -> "Collection"."""
    match = re.match(r"^arvados#(.+)$", kind) if isinstance(kind, str) else None
    if not match:
        return None
    name = match.group(1)
    candidate = name[:1].upper() + name[1:]
    if candidate not in _MODEL_CLASSES and candidate.endswith("s") and candidate[:-1] in _MODEL_CLASSES:
        candidate = candidate[:-1]
    return candidate if candidate in _MODEL_CLASSES else None


class FilterCompiler:
    """Turns one table's filters into a WHERE clause."""

    def __init__(self, shape: TableShape) -> None:
        self.shape = shape

    def compile(self, filters: t.Any) -> Condition:
        if filters in (None, ""):
            return Condition("", [])
        if not isinstance(filters, list):
            raise FilterError('Could not parse "filters" param as an array')
        clauses: list[str] = []
        params: list = []
        for one_filter in filters:
            condition = self._compile_one(one_filter)
            if condition:
                clauses.append(f"({condition.sql})")
                params.extend(condition.params)
        return Condition(" AND ".join(clauses), params)

    def _compile_one(self, one_filter: t.Any) -> Condition:
        padded = (list(one_filter) + [None, None, None])[:3] if isinstance(one_filter, list) else [one_filter, None, None]
        attrs_in, operator, operand = padded
        if operator == "@@":
            raise FilterError("Full text search operator is no longer supported")
        if not isinstance(one_filter, list):
            raise FilterError(f"Invalid element in filters array: {ruby_inspect(one_filter)} is not an array")
        if not isinstance(operator, str):
            raise FilterError(f"Invalid operator '{ruby_to_s(operator)}' ({ruby_class(operator)}) in filter")
        operator = operator.lower()
        if attrs_in == "any":
            attrs = self.shape.any_searchable(operator)
        elif isinstance(attrs_in, list):
            attrs = attrs_in
        else:
            attrs = [attrs_in]
        parts: list[Condition] = []
        for attr in attrs:
            parts.extend(self._compile_attr(attr, operator, operand))
        parts = [part for part in parts if part]
        return Condition(" OR ".join(f"({part.sql})" for part in parts), [param for part in parts for param in part.params])

    def _compile_attr(self, attr: t.Any, operator: str, operand: t.Any) -> list[Condition]:
        if not isinstance(attr, str):
            raise FilterError(f"Invalid attribute '{ruby_to_s(attr)}' in filter")
        column, dot, proppath = attr.partition(".")
        if dot:
            return self._compile_subproperty(column, proppath, operator, operand)
        if operator == "exists":
            if self.shape.columns.get(column) not in JSONB_TYPES:
                raise FilterError(f"Invalid attribute '{column}' for operator '{operator}' in filter")
            return [Condition(f"arv_jsonb_key_exists({_quote(column)}, ?)", [operand])]
        expression = _EXPRESSION.match(attr)
        if expression:
            return [self._compile_expression(expression, attr, operator, operand)]
        return self._compile_column(column, operator, operand)

    def _compile_expression(self, expression: re.Match, attr: str, operator: str, operand: t.Any) -> Condition:
        if operator != "=" or operand not in (True, "true"):
            raise FilterError(f'Invalid expression filter \'{attr}\': subsequent elements must be ["=", true]')
        left, comparison, right = expression.groups()
        allowed = self.shape.searchable(comparison)
        for token in (left, right):
            if token not in allowed:
                raise FilterError(f"Invalid attribute in expression: '{token}'")
            if self.shape.columns[token] != INTEGER:
                raise FilterError(f"Non-numeric attribute in expression: '{token}'")
        return Condition(f"{_quote(left)} {comparison} {_quote(right)}", [])

    def _compile_subproperty(self, column: str, proppath: str, operator: str, operand: t.Any) -> list[Condition]:
        if self.shape.columns.get(column) not in JSONB_TYPES:
            raise FilterError(f"Invalid attribute '{column}' for subproperty filter")
        if proppath.startswith("<") and proppath.endswith(">"):
            proppath = proppath[1:-1]
        quoted = _quote(column)
        if operator in ("=", "!="):
            negate = "NOT " if operator == "!=" else ""
            return [Condition(f"{negate}arv_jsonb_contains({quoted}, ?)", [json.dumps({proppath: operand})])]
        if operator == "in":
            self._require_array(operator, operand)
            return [Condition(f"arv_jsonb_contains({quoted}, ?)", [json.dumps({proppath: element})]) for element in operand]
        if operator in ("<", "<=", ">", ">="):
            return [Condition(f"arv_jsonb_field_compare({quoted}, ?, ?, ?)", [proppath, operator, json.dumps(operand)])]
        if operator in ("like", "ilike"):
            return [Condition(f"arv_like(arv_jsonb_field_text({quoted}, ?), ?, {int(operator == 'ilike')})",
                              [proppath, operand if isinstance(operand, str) else json.dumps(operand)])]
        if operator == "not in":
            self._require_array(operator, operand)
            texts = [element if isinstance(element, str) else json.dumps(element) for element in operand]
            marks = ", ".join("?" for element in texts) or "NULL"
            field = f"arv_jsonb_field_text({quoted}, ?)"
            return [Condition(f"{field} NOT IN ({marks}) OR {field} IS NULL", [proppath, *texts, proppath])]
        if operator == "exists":
            if operand is True:
                return [Condition(f"arv_jsonb_key_exists({quoted}, ?)", [proppath])]
            if operand is False:
                return [Condition(f"(NOT arv_jsonb_key_exists({quoted}, ?)) OR {quoted} IS NULL", [proppath])]
            raise FilterError(f"Invalid operand '{ruby_to_s(operand)}' for '{operator}' must be true or false")
        if operator == "contains":
            return [Condition(f"arv_jsonb_contains({quoted}, ?) OR arv_jsonb_contains({quoted}, ?)",
                              [json.dumps({proppath: operand}), json.dumps({proppath: [operand]})])]
        raise FilterError(f"Invalid operator for subproperty search '{operator}'")

    def _compile_column(self, column: str, operator: str, operand: t.Any) -> list[Condition]:
        kind = self.shape.columns.get(column)
        jsonb_allowed = kind in JSONB_TYPES and operator in ("contains", "=", "<>", "!=")
        if column not in self.shape.searchable(operator) and not jsonb_allowed:
            raise FilterError(f"Invalid attribute '{column}' in filter")
        if operator in ("=", "<", "<=", ">", ">=", "!=", "like", "ilike"):
            return [self._compile_comparison(column, kind, "<>" if operator == "!=" else operator, operand)]
        if operator in ("in", "not in"):
            return [self._compile_membership(column, kind, operator, operand)]
        if operator == "is_a":
            return [self._compile_is_a(column, operand)]
        if operator == "contains":
            return [self._compile_contains(column, kind, operator, operand)]
        raise FilterError(f"Invalid operator '{operator}'")

    def _compile_comparison(self, column: str, kind: str | None, operator: str, operand: t.Any) -> Condition:
        quoted = _quote(column)
        if isinstance(operand, str):
            return self._compare_to_string(column, kind, operator, operand)
        if operand is None and operator == "=":
            return Condition(f"{quoted} IS NULL", [])
        if operand is None and operator == "<>":
            return Condition(f"{quoted} IS NOT NULL", [])
        if kind == BOOLEAN and operator in ("=", "<>") and isinstance(operand, bool):
            return Condition(f"{quoted} {operator} ?", [int(operand)])
        if kind == INTEGER:
            if not isinstance(operand, int) or isinstance(operand, bool) or operand.bit_length() > 64:
                raise FilterError(f"Invalid operand '{ruby_to_s(operand)}' for integer attribute '{column}'")
            return Condition(f"{quoted} {operator} ?", [operand])
        raise FilterError(f"Invalid operand type '{ruby_class(operand)}' for '{operator}' operator in filters")

    def _compare_to_string(self, column: str, kind: str | None, operator: str, operand: str) -> Condition:
        quoted = _quote(column)
        value: t.Any = operand
        if kind == BOOLEAN:
            if operator not in ("=", "<>"):
                raise FilterError(f"Invalid operator '{operator}' for boolean attribute '{column}'")
            value = _boolean_word(operand, column)
        elif kind == DATETIME and re.search(r"[<=>]", operator):
            value = _timestamp_operand(operand)
        elif kind == INTEGER:
            value = _integer_word(operand)
        elif kind in JSONB_TYPES:
            return self._compare_jsonb_to_string(quoted, operator, operand)
        if operator in ("like", "ilike"):
            return Condition(f"arv_like({quoted}, ?, {int(operator == 'ilike')})", [value])
        if operator == "<>":
            return Condition(f"{quoted} <> ? OR {quoted} IS NULL", [value])
        return Condition(f"{quoted} {operator} ?", [value])

    @staticmethod
    def _compare_jsonb_to_string(quoted: str, operator: str, operand: str) -> Condition:
        try:
            json.loads(operand)
        except ValueError:
            raise FilterError("invalid input syntax for type json")
        if operator == "<>":
            return Condition(f"NOT arv_jsonb_equal({quoted}, ?) OR {quoted} IS NULL", [operand])
        return Condition(f"arv_jsonb_equal({quoted}, ?)", [operand])

    def _compile_membership(self, column: str, kind: str | None, operator: str, operand: t.Any) -> Condition:
        self._require_array(operator, operand)
        values = list(operand)
        if kind == INTEGER:
            for element in values:
                if not isinstance(element, int) or isinstance(element, bool) or element.bit_length() > 64:
                    raise FilterError(f"Invalid element '{ruby_to_s(element)}' in array for integer attribute '{column}'")
        elif kind == DATETIME:
            values = [_timestamp_operand(element) if isinstance(element, str) else element for element in values]
        elif kind == BOOLEAN:
            values = [int(element) if isinstance(element, bool) else element for element in values]
        values = [json.dumps(element) if isinstance(element, (list, dict)) else element for element in values]
        quoted = _quote(column)
        if len(values) > LONG_LIST:
            # One JSON parameter instead of thousands keeps clear of SQLite's limit on bound variables.
            members, params = "SELECT value FROM json_each(?)", [json.dumps(values)]
        else:
            members, params = ", ".join("?" for element in values) or "NULL", values
        sql = f"{quoted} {operator.upper()} ({members})"
        if operator == "not in" and None not in values:
            sql = f"({sql} OR {quoted} IS NULL)"
        return Condition(sql, params)

    def _compile_is_a(self, column: str, operand: t.Any) -> Condition:
        kinds = operand if isinstance(operand, list) else [operand]
        this_infix = ids.type_infix(self.shape.class_name)
        parts: list[str] = []
        params: list = []
        for kind in kinds:
            class_name = class_for_kind(kind)
            if class_name is None:
                parts.append("1=0")
            elif column == "uuid":
                parts.append("1=1" if ids.type_infix(class_name) == this_infix else "1=0")
            else:
                parts.append(f"substr({_quote(column)}, 7, 5) = ?")
                params.append(ids.type_infix(class_name))
        return Condition(" OR ".join(parts) or "1=0", params)

    @staticmethod
    def _compile_contains(column: str, kind: str | None, operator: str, operand: t.Any) -> Condition:
        if kind not in JSONB_TYPES:
            raise FilterError(f"Invalid attribute '{column}' for '{operator}' operator")
        if operand == []:
            raise FilterError(f"Invalid operand '{ruby_inspect(operand)}' for '{operator}' operator")
        wanted = operand if isinstance(operand, list) else [operand]
        if not all(isinstance(element, str) for element in wanted):
            raise FilterError(
                f"Invalid element {ruby_inspect(wanted)} in operand for \"{operator}\" operator"
                " (operand must be a string or array of strings)")
        return Condition(f"arv_jsonb_all_keys_exist({_quote(column)}, ?)", [json.dumps(wanted)])

    @staticmethod
    def _require_array(operator: str, operand: t.Any) -> None:
        if not isinstance(operand, list):
            raise FilterError(f"Invalid operand type '{ruby_class(operand)}' for '{operator}' operator in filters")


def _boolean_word(operand: str, column: str) -> int:
    if operand.lower() in _TRUE_WORDS:
        return 1
    if operand.lower() in _FALSE_WORDS:
        return 0
    raise FilterError(f"Invalid operand '{operand}' for boolean attribute '{column}'")


def _integer_word(operand: str) -> int:
    try:
        return int(operand.strip())
    except ValueError:
        raise FilterError(f'invalid input syntax for type bigint: "{operand}"')


def _timestamp_operand(operand: str) -> str:
    try:
        return timestamps.normalize_timestamp(operand)
    except ValueError:
        raise FilterError(f'no time information in "{operand}"')


def compile_filters(filters: t.Any, shape: TableShape) -> Condition:
    return FilterCompiler(shape).compile(filters)


def compile_where(where: t.Any, shape: TableShape) -> Condition:
    """The legacy "where" parameter: attribute -> value equality, unknown attributes ignored."""
    if where in (None, ""):
        return Condition("", [])
    if not isinstance(where, dict):
        raise FilterError('Could not parse "where" param as an object')
    clauses: list[str] = []
    params: list = []
    for attr, value in where.items():
        if not (_ORDERABLE_ATTR.match(attr) and attr in shape.columns):
            continue
        quoted = _quote(attr)
        if value is None:
            clauses.append(f"{quoted} IS NULL")
        elif isinstance(value, list) and len(value) == 2 and value[0] == "contains":
            clauses.append(f"arv_like({quoted}, ?, 0)")
            params.append(f"%{value[1]}%")
        elif isinstance(value, list):
            clauses.append(f"{quoted} IN ({', '.join('?' for element in value) or 'NULL'})")
            params.extend(value)
        elif isinstance(value, dict):
            for key, element in value.items():
                if isinstance(element, str):
                    clauses.append(f"arv_like({quoted}, ?, 1)")
                    params.append(f"%{key}%{element}%")
        else:
            clauses.append(f"{quoted} = ?")
            params.append(int(value) if isinstance(value, bool) else value)
    return Condition(" AND ".join(clauses), params)


def parse_order(order: t.Any) -> list[str]:
    if order in (None, "", []):
        return []
    if isinstance(order, str):
        if order.startswith("["):
            try:
                order = json.loads(order)
            except ValueError:
                raise FilterError("Invalid value for order parameter")
        else:
            order = order.split(",")
    if not isinstance(order, list):
        return []
    return [ruby_to_s(entry) for entry in order]


def compile_order(order: t.Any, shape: TableShape, select: list[str] | None = None) -> list[tuple[str, str]]:
    """(column, direction) pairs: the client's valid entries, then modified_at desc and uuid desc, as optimize_orders does."""
    wanted: list[tuple[str, str]] = []
    for entry in parse_order(order):
        words = entry.strip().split()
        if not words:
            continue
        attr, direction = words[0], (words[1] if len(words) > 1 else "asc").lower()
        if "." in attr and attr.split(".", 1)[0] == shape.table:
            attr = attr.split(".", 1)[1]
        if _ORDERABLE_ATTR.match(attr) and attr in shape.columns and direction in ("asc", "desc"):
            wanted.append((attr, direction))
    chosen: list[tuple[str, str]] = []
    used: set[str] = set()
    for attr, direction in wanted + [("modified_at", "desc"), ("uuid", "desc")]:
        if attr in used or attr not in shape.columns:
            continue
        used.add(attr)
        chosen.append((attr, direction))
        if attr == "uuid":
            break
    if select:
        chosen = [(attr, direction) for attr, direction in chosen if attr in select]
    return chosen


def order_sql(orders: list[tuple[str, str]]) -> str:
    """PostgreSQL sorts NULLs last ascending and first descending; without any order, rows come in insertion order."""
    if not orders:
        return "id ASC"
    return ", ".join(
        f"{_quote(attr)} {'ASC NULLS LAST' if direction == 'asc' else 'DESC NULLS FIRST'}" for attr, direction in orders)


def validate_select(select: t.Any, selectable: t.Sequence[str], shape: TableShape) -> list[str] | None:
    """select_for_klass: every name must be an API attribute of the class, optionally table-qualified."""
    if select in (None, "", []):
        return None
    if isinstance(select, str):
        try:
            select = json.loads(select)
        except ValueError:
            raise FilterError('Could not parse "select" param as an array')
    if not isinstance(select, list):
        raise FilterError('Could not parse "select" param as an array')
    chosen = []
    for column in select:
        if column == "modified_by_client_uuid":
            continue
        name = column.split(".", 1)[1] if isinstance(column, str) and column.startswith(shape.table + ".") else column
        if name not in selectable:
            raise FilterError(f"Invalid attribute '{ruby_to_s(column)}' of {shape.class_name} in select parameter")
        chosen.append(name)
    return chosen or None
