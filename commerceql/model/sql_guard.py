"""Checks that SQL written in a model or mapping file is one harmless expression.

A store folder can come from anyone (a colleague's export, a downloaded example), and
`connect()` loads its `model/*.yaml` automatically, so model SQL is untrusted input: it must not
read files (`read_csv('/etc/passwd')`), run statements (`COPY ... TO`, `ATTACH`) or reach tables
other than the ones the compiler joins. Every `sql:` / `on:` of a model and every `sql =` of an
import mapping goes through `check_expression`, which

1. tokenizes the text with sqlglot's DuckDB tokenizer and refuses comments, `;`, parameters and
   the string forms (E'...', $$...$$, ...) whose escaping rules could make sqlglot and DuckDB
   disagree about where a string ends (a parser differential would let text hide from the check);
2. refuses any call whose name, as written, is not in an allow-list of DuckDB scalar and
   aggregate functions. The name is read from the tokens rather than from sqlglot's tree because
   DuckDB runs the text as written, and sqlglot maps several spellings to one node type;
3. parses it with sqlglot (dialect duckdb) into exactly one expression and walks the tree:
   every node type must be in an allow-list (arithmetic, comparisons, CASE, CAST, aggregates with
   FILTER, date / string / list functions...), so subqueries, table functions, windows and
   statements are refused, and every column must be `alias.column` with an alias the query
   defines (the table itself or one of its joins).

The allow-lists were derived by walking every expression of the built-in model
(`commerceql/model/tables/*.yaml`) and widened with functions of the same families; anything
else is refused with a message naming the file, the field and the offending construct.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from commerceql.errors import CommerceQLDataError

# `{other_metric}` in metric SQL: inlined by the model, checked here as a bare placeholder column.
METRIC_REFERENCE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_PLACEHOLDER_PREFIX = "cqlref__"


class ModelSQLError(CommerceQLDataError):
    """SQL in a model or mapping file that is not one allowed expression over the store's columns."""

    kind = "model error"


def _classes(*names: str) -> frozenset[type[exp.Expression]]:
    # Node classes come and go between sqlglot releases; a missing name is simply not allowed.
    found = (getattr(exp, name, None) for name in names)
    return frozenset(c for c in found if isinstance(c, type) and issubclass(c, exp.Expression))


# Structure and operators. No Select, Subquery, Table, Window, Struct, Dot or statement classes.
_STRUCTURE = _classes(
    "Column", "Identifier", "Literal", "Null", "Boolean", "Paren", "Star", "DataType", "DataTypeParam",
    "Var", "Interval", "Distinct", "Filter", "Where", "Case", "If", "Cast", "TryCast", "Bracket", "Array",
    "Lambda", "Tuple", "Ordered", "Order", "Slice",
    "Add", "Sub", "Mul", "Div", "IntDiv", "Mod", "Neg", "Pow", "DPipe",
    "EQ", "NEQ", "GT", "GTE", "LT", "LTE", "NullSafeEQ", "NullSafeNEQ", "Is", "In", "Between",
    "Like", "ILike", "SimilarTo", "RegexpLike", "RegexpILike", "Glob", "And", "Or", "Not", "Xor",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot",
)
# Functions sqlglot knows by class (aggregate, scalar, date, string and list families).
_FUNCTIONS = _classes(
    "Sum", "Count", "Avg", "Min", "Max", "ArgMax", "ArgMin", "AnyValue", "First", "Last", "Median",
    "Quantile", "PercentileCont", "PercentileDisc", "ApproxQuantile", "Stddev", "StddevPop", "StddevSamp",
    "Variance", "VariancePop", "ApproxDistinct", "ArrayAgg", "GroupConcat", "StringAgg", "LogicalAnd",
    "LogicalOr", "CountIf", "SumIf", "Corr", "CovarPop", "CovarSamp", "Mode",
    "Coalesce", "Nullif", "Greatest", "Least", "Abs", "Round", "Floor", "Ceil", "Sqrt", "Ln", "Log", "Exp",
    "Sign", "Trunc", "Length", "Lower", "Upper", "Trim", "Substring", "Concat", "ConcatWs", "Replace",
    "StrPosition", "Left", "Right", "Pad", "RegexpExtract", "RegexpReplace", "RegexpSplit", "Split",
    "StartsWith", "EndsWith", "Contains", "Reverse", "Repeat", "Initcap", "MD5", "Hash",
    "TimestampTrunc", "DateTrunc", "Extract", "TimeToUnix", "UnixToTime", "DateDiff", "TimestampDiff",
    "DateAdd", "DateSub", "TimestampAdd", "TimestampSub", "CurrentDate", "CurrentTimestamp", "StrToTime",
    "StrToDate", "TimeToStr", "TsOrDsToDate", "DayOfWeek", "DayOfWeekIso", "DayOfMonth", "DayOfYear",
    "WeekOfYear", "Week", "Year", "Month", "Quarter", "Day", "Hour", "Minute", "Second", "LastDay",
    "MonthName", "DayName", "Date", "MakeDate", "TimeFromParts", "DateFromParts", "TimestampFromParts",
    "AtTimeZone", "ConvertTimezone",
    "ArrayContains", "ArrayContainsAll", "ArrayOverlaps", "ArraySize", "ArrayLength", "ArrayToString",
    "ArrayJoin", "ArrayFilter", "ArrayDistinct", "ArrayUniqueAgg", "ArraySort", "ArrayConcat", "ArraySlice",
    "Transform", "Flatten", "ArrayFirst", "ArrayLast", "ArraySum", "ArrayMax", "ArrayMin",
)
ALLOWED_NODES: frozenset[type[exp.Expression]] = _STRUCTURE | _FUNCTIONS

# Names that may be called in the text, as DuckDB spells them. The built-in model uses sum, count,
# coalesce, nullif and cast; the rest are the same families (see the module docstring).
ALLOWED_FUNCTION_NAMES = frozenset(
    """
    sum count avg mean min max arg_max arg_min max_by min_by argmax argmin any_value first last median
    quantile quantile_cont quantile_disc percentile_cont percentile_disc approx_quantile mode stddev
    stddev_pop stddev_samp variance var_pop var_samp approx_count_distinct list array_agg string_agg
    group_concat listagg bool_and bool_or count_if countif sum_if corr covar_pop covar_samp fsum favg
    coalesce nullif ifnull greatest least if cast try_cast abs round floor ceil ceiling sqrt ln log log10
    log2 exp pow power sign trunc length len lower upper lcase ucase trim ltrim rtrim substring substr
    concat concat_ws replace strpos instr position left right lpad rpad regexp_extract regexp_replace
    regexp_matches regexp_full_match regexp_split_to_array split string_split str_split starts_with
    ends_with contains prefix suffix reverse repeat initcap md5 hash
    date_trunc datetrunc date_part datepart extract epoch epoch_ms epoch_us date_diff datediff date_sub
    datesub date_add age strftime strptime try_strptime to_timestamp make_date make_time make_timestamp
    timezone year month day quarter week weekofyear yearweek dayofweek isodow dayofmonth dayofyear hour
    minute second last_day monthname dayname date to_days to_hours to_minutes to_seconds to_months
    to_years to_weeks
    list_contains list_has array_contains array_has list_has_any list_has_all array_has_any array_has_all
    array_length list_value list_extract list_element array_extract list_aggregate list_distinct
    array_distinct list_unique list_sort array_sort list_reverse_sort list_filter array_filter
    list_transform array_transform apply list_apply array_to_string list_concat array_concat
    list_cat array_cat list_slice array_slice flatten list_sum list_min list_max list_avg list_count
    list_first list_last len
    local_date local_timestamp seconds_between utc_instant
    """.split()
)
# local_date / local_timestamp / seconds_between / utc_instant are the model's own macros
# (commerceql/dialect.py), expanded by the compiler into each engine's SQL before it sees them.
# Words that are followed by `(` without being a call.
_NOT_CALLS = frozenset(
    """
    in filter where and or not then else when as over case is distinct between like ilike similar glob
    array list decimal numeric varchar char character nvarchar string text interval
    """.split()
)
# Tokens that have no place in one expression, or whose quoting rules differ between sqlglot and
# DuckDB (escape strings, dollar quoting, byte / bit / hex / national strings).
_REFUSED_TOKENS: dict[str, str] = {
    "SEMICOLON": "more than one statement (`;`)",
    "PARAMETER": "a parameter ($1, $name)",
    "PLACEHOLDER": "a placeholder (?)",
    "SESSION_PARAMETER": "a session parameter",
    "BYTE_STRING": "an escape string (E'...')",
    "HEREDOC_STRING": "a dollar-quoted string ($$...$$)",
    "RAW_STRING": "a raw string",
    "NATIONAL_STRING": "a national string (N'...')",
    "BIT_STRING": "a bit string",
    "HEX_STRING": "a hex string",
    "UNICODE_STRING": "a unicode escape string (U&'...')",
}
_STATEMENTS = tuple(_classes(
    "Query", "Select", "Union", "Subquery", "Exists", "Table", "Values", "Copy", "Command", "Insert",
    "Update", "Delete", "Drop", "Create", "Alter", "Attach", "Detach", "Set", "Pragma", "Use", "Merge",
    "Describe", "Show", "Install", "Load", "Export", "Import", "Transaction", "Commit", "Rollback", "With",
    "Summarize",
))


def _fail(where: str, problem: str, what: str, hint: str | None = None) -> ModelSQLError:
    return ModelSQLError(f"{where}: {problem} is not allowed in {what}", hint=hint)


def _tokens(
    text: str, where: str, what: str, names: frozenset[str] = ALLOWED_FUNCTION_NAMES, not_calls: frozenset[str] = frozenset()
) -> list[Token]:
    try:
        tokens = sqlglot.tokenize(text, read="duckdb")
    except (TokenError, ParseError, ValueError) as exc:
        raise ModelSQLError(f"{where}: cannot read this SQL: {str(exc).splitlines()[0]}") from exc
    for token in tokens:
        if token.comments:
            raise _fail(where, "a comment (-- or /* */)", what)
        refused = _REFUSED_TOKENS.get(token.token_type.name)
        if refused:
            raise _fail(where, refused, what)
    for token, following in zip(tokens, tokens[1:], strict=False):
        if following.token_type != TokenType.L_PAREN:
            continue
        if token.token_type in (TokenType.STRING, TokenType.NUMBER, TokenType.IDENTIFIER):
            if token.token_type == TokenType.IDENTIFIER:
                # "read_csv"(...) is a call too: quoting the name must not hide it.
                raise _fail(where, f'function "{token.text}"', what)
            continue
        name = token.text.lower()
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or name in _NOT_CALLS or name in not_calls:
            continue
        if name not in names:
            raise _fail(where, f"function {name}", what, hint=PORTABLE_HINTS.get(name, _FUNCTION_HINT))
    return tokens


_FUNCTION_HINT = (
    "model SQL may use aggregates, arithmetic, CASE, CAST and date, string and list functions over "
    "the table's columns (see docs/security.md)"
)


def _describe(node: exp.Expression) -> str:
    if isinstance(node, _STATEMENTS):
        if isinstance(node, (exp.Subquery, exp.Select, exp.Exists)) or type(node).__name__ in ("Query", "Union"):
            return "a subquery"
        if isinstance(node, exp.Table):
            return "a table reference"
        return f"a statement ({type(node).__name__.upper()})"
    if isinstance(node, exp.Func):
        name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
        return f"function {name.lower()}"
    if isinstance(node, exp.Window):
        return "a window (OVER)"
    return f"`{node.sql(dialect='duckdb')[:40]}` ({type(node).__name__})"


def check_expression(
    text: object,
    *,
    where: str,
    aliases: Collection[str],
    bare_columns: bool = False,
    metric_references: bool = False,
    what: str = "model SQL",
    portable: bool = False,
) -> str:
    """Check `text` is one allowed SQL expression; return it unchanged, or raise ModelSQLError.

    With `portable` (model SQL, which runs on every engine) the expression must also read the
    same on each engine: see `check_portable`.

    `where` names the file and field for the message (`model/x.yaml: metrics.m.sql`). Columns must
    be `alias.column` with an alias from `aliases`; `bare_columns` also admits unqualified names
    (an import mapping's expressions over its source's columns). With `metric_references`,
    `{other_metric}` placeholders are accepted where a value may stand (not inside quotes).
    """
    if not isinstance(text, str) or not text.strip():
        raise ModelSQLError(f"{where}: must be a non-empty SQL expression (text), not {type(text).__name__}")
    checked = text
    references = 0
    if metric_references:
        # Each `{name}` becomes a bare column the walk below must find as a value, never inside a
        # string or quoted identifier (where inlining could unbalance the quotes).
        checked, references = METRIC_REFERENCE.subn(lambda m: f" {_PLACEHOLDER_PREFIX}{m.group(1)} ", text)
    _tokens(checked, where, what)
    try:
        parsed = sqlglot.parse(checked, read="duckdb")
    except (ParseError, TokenError) as exc:
        message = str(exc).splitlines()[0]
        raise ModelSQLError(f"{where}: not a valid SQL expression: {message}") from exc
    expressions = [e for e in parsed if e is not None]
    if len(expressions) != 1:
        raise _fail(where, "more than one statement", what)
    expression = expressions[0]
    lambda_names: set[str] = set()
    for node in expression.walk():
        if isinstance(node, exp.Lambda):
            lambda_names.update(p.name for p in node.expressions if isinstance(p, (exp.Identifier, exp.Column)))
    aliases = set(aliases)
    found_references = 0
    for node in expression.walk():
        if not _allowed_node(node):
            raise _fail(where, _describe(node), what, hint=_FUNCTION_HINT)
        if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
            raise _fail(where, "`*` outside COUNT(*)", what)
        if isinstance(node, exp.In) and node.args.get("query") is not None:
            raise _fail(where, "a subquery", what)
        if isinstance(node, exp.Column):
            found_references += _check_column(node, where, what, aliases, lambda_names, bare_columns)
    if found_references != references:
        raise ModelSQLError(
            f"{where}: a `{{metric}}` reference must stand for a value, not sit inside quotes or a name"
        )
    if portable:
        check_portable(text, where=where)
    return text


def _allowed_node(node: exp.Expression, names: frozenset[str] = ALLOWED_FUNCTION_NAMES) -> bool:
    if type(node) in ALLOWED_NODES:
        return True
    if isinstance(node, exp.Func) and not isinstance(node, _STATEMENTS):
        # A function sqlglot parses into a class of its own (or none, Anonymous) is allowed when its
        # name is; the token check has already refused calls spelled with any other name.
        name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
        return name.lower() in names
    return False


def _check_column(
    node: exp.Column, where: str, what: str, aliases: set[str], lambda_names: set[str], bare: bool
) -> int:
    """Check one column reference; return 1 for a `{metric}` placeholder, else 0."""
    if isinstance(node.this, exp.Star):
        raise _fail(where, "`alias.*`", what)
    if node.args.get("db") is not None or node.args.get("catalog") is not None:
        raise _fail(where, f"the reference `{node.sql(dialect='duckdb')}` (use alias.column)", what)
    name = node.name
    table = node.table
    identifier = node.this
    if not table:
        if name.startswith(_PLACEHOLDER_PREFIX) and isinstance(identifier, exp.Identifier) and not identifier.quoted:
            return 1
        if name in lambda_names or bare:
            return 0
        raise ModelSQLError(
            f"{where}: column `{name}` must be written alias.column",
            hint=f"the aliases here are {', '.join(f'`{a}`' for a in sorted(aliases))}",
        )
    if table not in aliases:
        raise ModelSQLError(
            f"{where}: `{table}.{name}` refers to `{table}`, which is neither this table nor one of its joins",
            hint=f"the aliases here are {', '.join(f'`{a}`' for a in sorted(aliases))}",
        )
    return 0


# -- one expression, every engine ----------------------------------------------------------------
# Model SQL is written once and runs, as written, on every engine (the compiler expands only the
# macros): DuckDB and Spark must both read it, and read it alike. These are the functions both
# engines accept under the same name with the same meaning for the arguments model SQL gives
# them (checked against DuckDB and Spark 4; the built-in model uses a subset). Anything else in
# ALLOWED_FUNCTION_NAMES is DuckDB-only or means something else on Spark.
PORTABLE_FUNCTION_NAMES = frozenset(
    """
    sum count avg min max median stddev stddev_pop stddev_samp variance var_pop var_samp count_if
    bool_and bool_or any_value max_by min_by
    coalesce nullif ifnull greatest least if cast try_cast abs round floor ceil ceiling sqrt ln log10 log2
    exp pow power sign
    length lower upper trim ltrim rtrim substring substr concat concat_ws replace left right lpad rpad
    instr reverse repeat md5 contains
    date_trunc extract year month day quarter hour minute second dayofmonth dayofyear weekofyear
    last_day make_date
    array_contains
    local_date local_timestamp seconds_between utc_instant
    """.split()
)
MACRO_NAMES = frozenset({"local_date", "local_timestamp", "seconds_between", "utc_instant"})

# The spelling to use instead, for names one engine lacks or reads differently (DuckDB's and
# Spark's); the message says which macro or portable form gives the same answer on both.
PORTABLE_HINTS: dict[str, str] = {
    **dict.fromkeys(
        ("list_contains", "list_has", "array_has"),
        "write array_contains(list, value): both engines read it (list_contains is DuckDB's name)",
    ),
    **dict.fromkeys(("len", "array_length", "size", "array_size", "cardinality"),
                    "no list length reads alike on both engines; count the rows instead, or ask for a model macro"),
    **dict.fromkeys(("list_transform", "array_transform", "apply", "list_apply", "transform"),
                    "lambdas over lists differ between engines; the compiler's list tests (CONTAINS) cover "
                    "list dimensions, or ask for a model macro"),
    **dict.fromkeys(("timezone", "from_utc_timestamp", "to_utc_timestamp", "convert_timezone"),
                    "use the macro local_timestamp(ts) (local wall-clock time) or local_date(ts) (local "
                    "calendar date): they convert to the store's time zone on every engine"),
    **dict.fromkeys(("date", "to_date", "strftime", "date_format", "strptime", "try_strptime", "to_timestamp"),
                    "use the macro local_date(ts) for a calendar date, or a time grain (GROUP BY day, month) "
                    "in the query"),
    **dict.fromkeys(("epoch", "epoch_ms", "epoch_us", "unix_timestamp", "unix_seconds", "unix_micros", "age"),
                    "for a duration write the macro seconds_between(earlier, later) (divide by 86400.0 "
                    "for days), or extract(day FROM later - earlier) for whole days"),
    **dict.fromkeys(("date_diff", "datediff", "date_sub", "datesub", "date_add", "timestampdiff",
                     "timestampadd", "to_days", "to_months", "to_years", "to_weeks", "to_hours",
                     "to_minutes", "to_seconds", "add_months"),
                    "calendar arithmetic is spelled differently (and date_sub means opposite things) on "
                    "DuckDB and Spark; for a duration write seconds_between(earlier, later) or "
                    "extract(day FROM later - earlier)"),
    **dict.fromkeys(("dayofweek", "isodow", "weekday", "dow", "date_part", "datepart", "dayname", "monthname"),
                    "the day-of-week numbering differs (DuckDB Sunday = 0, Spark Sunday = 1): group by the "
                    "query's day_of_week or month_of_year instead"),
    **dict.fromkeys(("starts_with", "startswith", "prefix"), "write `x LIKE 'prefix%'` (both engines)"),
    **dict.fromkeys(("ends_with", "endswith", "suffix"), "write `x LIKE '%suffix'` (both engines)"),
    **dict.fromkeys(("strpos", "position", "locate"), "write instr(text, part): both engines read it"),
    **dict.fromkeys(("arg_max", "argmax", "max_by_value"), "write max_by(value, key): both engines read it"),
    **dict.fromkeys(("arg_min", "argmin"), "write min_by(value, key): both engines read it"),
    **dict.fromkeys(("nvl",), "write coalesce(a, b): both engines read it"),
    **dict.fromkeys(("mean",), "write avg(x): both engines read it"),
    **dict.fromkeys(("quantile", "quantile_cont", "quantile_disc", "percentile_cont", "percentile_disc",
                     "percentile", "approx_quantile", "approx_percentile"),
                    "write median(x): both engines read it (percentiles are spelled differently)"),
    **dict.fromkeys(("approx_count_distinct",),
                    "the approximations differ between engines; write count(DISTINCT x)"),
    **dict.fromkeys(("regexp_matches", "regexp_full_match", "regexp_like", "rlike", "regexp", "regexp_extract",
                     "regexp_replace", "regexp_split_to_array", "split", "string_split", "str_split"),
                    "regular expressions differ between engines (defaults, flags, escaping); use LIKE"),
    **dict.fromkeys(("list", "array_agg", "collect_list", "string_agg", "group_concat", "listagg"),
                    "list and text aggregates are not portable; group by the value instead"),
    **dict.fromkeys(("hash", "xxhash64"), "the engines hash differently: use md5(text) for a stable digest"),
    **dict.fromkeys(("first", "last", "first_value", "last_value"),
                    "which row comes first is not defined alike; use max_by(value, key) or min_by"),
}
_GENERIC_PORTABLE_HINT = (
    "model SQL runs on DuckDB and Spark as written: use functions both read alike (sum, count, avg, "
    "coalesce, nullif, CASE, CAST, extract, date_trunc, lower, concat, array_contains ...) or the macros "
    "local_date, local_timestamp, seconds_between, utc_instant (docs/engines.md)"
)
# Types both engines name alike in CAST (Spark's VARCHAR needs a length, TIMESTAMPTZ is DuckDB's).
PORTABLE_TYPE_NAMES = frozenset(
    "boolean smallint int integer bigint float double decimal numeric date string".split()
)
_TYPE_HINTS = {
    **dict.fromkeys(("varchar", "text", "char", "character", "nvarchar", "bpchar"),
                    "write CAST(x AS STRING): both engines read it (Spark's VARCHAR needs a length)"),
    **dict.fromkeys(("timestamptz", "timestamp", "datetime", "time"),
                    "instants stay as they are; use local_timestamp(ts) or local_date(ts) for local time, "
                    "and utc_instant('1997-09-30') for a fixed instant"),
    **dict.fromkeys(("hugeint", "ubigint", "uinteger", "usmallint", "utinyint", "int128"),
                    "write DECIMAL(38, 0) or BIGINT"),
    **dict.fromkeys(("real", "float4", "float8", "int8", "int4", "int2", "long", "short", "byte", "tinyint"),
                    "write DOUBLE, INTEGER or BIGINT"),
}


def _portable_error(where: str, problem: str, hint: str) -> ModelSQLError:
    return ModelSQLError(f"{where}: {problem} does not read alike on DuckDB and Spark", hint=hint)


def check_portable(text: str, *, where: str) -> str:
    """Check that model SQL means the same on every engine; return it unchanged, or raise ModelSQLError.

    After its macros are expanded for each engine's dialect, the text must parse as that dialect
    (sqlglot), call only PORTABLE_FUNCTION_NAMES (or the macros), cast only to PORTABLE_TYPE_NAMES,
    and avoid the spellings the engines read differently: `"quoted"` names (Spark reads a string),
    backslashes in strings (Spark reads escapes), `::` casts and `lambda` (DuckDB's). Called for
    every untrusted model expression after `check_expression`'s safety checks.
    """
    from commerceql.dialect import DIALECTS, MacroArgumentError

    checked = METRIC_REFERENCE.sub(lambda m: f" {_PLACEHOLDER_PREFIX}{m.group(1)} ", text)
    tokens = sqlglot.tokenize(checked, read="duckdb")
    for token, following in zip(tokens, [*tokens[1:], None], strict=False):
        kind = token.token_type
        if kind == TokenType.IDENTIFIER:
            raise _portable_error(where, f'the quoted name "{token.text}"', "write names unquoted "
                                  '(Spark reads "text" as a string, DuckDB as a name)')
        if kind == TokenType.STRING and "\\" in token.text:
            raise _portable_error(where, "a backslash inside a string",
                                  "Spark reads \\ as an escape and DuckDB does not; avoid it (for LIKE, "
                                  "match the character with _)")
        if kind == TokenType.DCOLON:
            raise _portable_error(where, "the cast `::`", "write CAST(x AS type)")
        if kind == TokenType.DIV:
            raise _portable_error(where, "integer division `//`",
                                  "write FLOOR(a / b) (Spark has no `//`; its `div` is not DuckDB's)")
        if kind in (TokenType.TIMESTAMPTZ, TokenType.TIMESTAMPLTZ, TokenType.TIMESTAMP, TokenType.TIMESTAMPNTZ) and (
                following is not None and following.token_type == TokenType.STRING):
            raise _portable_error(where, f"the literal {token.text.upper()} {following.text!r}",
                                  _TYPE_HINTS["timestamptz"])
        if token.text.lower() == "lambda":
            raise _portable_error(where, "a `lambda`", PORTABLE_HINTS["list_transform"])
        if (following is not None and following.token_type == TokenType.L_PAREN
                and kind not in (TokenType.STRING, TokenType.NUMBER)):
            name = token.text.lower()
            if (re.fullmatch(r"[a-z_][a-z0-9_]*", name) and name not in _NOT_CALLS
                    and name not in PORTABLE_FUNCTION_NAMES):
                raise _portable_error(where, f"function {name}", PORTABLE_HINTS.get(name, _GENERIC_PORTABLE_HINT))
        if kind == TokenType.ALIAS and following is not None:
            type_name = following.text.lower()
            if type_name not in PORTABLE_TYPE_NAMES:
                raise _portable_error(where, f"the type {following.text.upper()}",
                                      _TYPE_HINTS.get(type_name, "cast to BOOLEAN, INTEGER, BIGINT, DOUBLE, "
                                                      "DECIMAL(p, s), DATE or STRING"))
    for dialect in DIALECTS.values():
        # The engine reads the text with the macros expanded (any zone: only the shape matters).
        try:
            expanded = dialect.expand_macros(checked, "UTC")
        except MacroArgumentError as exc:
            raise ModelSQLError(f"{where}: {exc}", hint=_GENERIC_PORTABLE_HINT) from exc
        try:
            parsed = [e for e in sqlglot.parse(expanded, read=dialect.name) if e is not None]
        except (ParseError, TokenError) as exc:
            raise ModelSQLError(
                f"{where}: does not parse as {dialect.name} SQL: {str(exc).splitlines()[0]}",
                hint=_GENERIC_PORTABLE_HINT,
            ) from exc
        if len(parsed) != 1:
            raise ModelSQLError(f"{where}: is not one expression as {dialect.name} SQL", hint=_GENERIC_PORTABLE_HINT)
    return text


# What a mapping's `[source] query` may add to expressions: the parts of one SELECT.
_QUERY_NODES = _classes(
    "Select", "From", "Join", "Where", "Group", "Having", "Order", "Ordered", "Limit", "Offset", "Subquery",
    "Union", "Except", "Intersect", "With", "CTE", "TableAlias", "Alias", "Table", "Window", "WindowSpec",
    "Qualify", "Distinct", "RowNumber", "Rank", "DenseRank", "Lag", "Lead", "FirstValue", "LastValue", "NthValue",
    "Ntile", "PercentRank", "CumeDist", "Exists",
)
_QUERY_WORDS = frozenset(
    "from join using on by select union all except intersect exists lateral exclude having qualify partition "
    "order group limit offset".split()
)
_WINDOW_FUNCTION_NAMES = frozenset(
    "row_number rank dense_rank lag lead first_value last_value nth_value ntile percent_rank cume_dist".split()
)


def check_source_query(text: object, *, where: str, catalog: str) -> str:
    """Check a mapping's `[source] query`: one SELECT over tables of the attached `catalog` only.

    The query runs on the import's own connection, so the same rules as model SQL apply to its
    expressions (allow-listed functions, no comments or `;`), and every table it reads must be
    written `catalog.table` (or `catalog.schema.table`) unless it is a name the query defines
    with WITH: an unqualified name could otherwise become a DuckDB replacement scan of a file
    (`FROM 'x.csv'`). Returns the text unchanged.
    """
    what = "the source query"
    if not isinstance(text, str) or not text.strip():
        raise ModelSQLError(f"{where}: must be a SELECT statement (text), not {type(text).__name__}")
    tokens = _tokens(text, where, what, ALLOWED_FUNCTION_NAMES | _WINDOW_FUNCTION_NAMES, _QUERY_WORDS)
    for token, following in zip(tokens, tokens[1:], strict=False):
        if token.token_type in (TokenType.FROM, TokenType.JOIN) and following.token_type == TokenType.STRING:
            raise _fail(where, "reading a file by name", what)
    try:
        parsed = [e for e in sqlglot.parse(text, read="duckdb") if e is not None]
    except (ParseError, TokenError) as exc:
        raise ModelSQLError(f"{where}: not a valid SELECT: {str(exc).splitlines()[0]}") from exc
    if len(parsed) != 1 or not isinstance(parsed[0], (exp.Select, exp.Union, exp.Except, exp.Intersect)):
        raise _fail(where, "anything but one SELECT", what)
    query = parsed[0]
    defined = {cte.alias_or_name for cte in query.find_all(exp.CTE)}
    for node in query.walk():
        if not (type(node) in _QUERY_NODES or _allowed_node(node, ALLOWED_FUNCTION_NAMES | _WINDOW_FUNCTION_NAMES)):
            raise _fail(where, _describe(node), what)
        if isinstance(node, exp.Table):
            if not isinstance(node.this, exp.Identifier):
                raise _fail(where, f"reading `{node.sql(dialect='duckdb')}`", what)
            parts = [p for p in (node.catalog, node.db) if p]
            if not parts and node.name in defined:
                continue
            if not parts or parts[0] != catalog:
                raise ModelSQLError(
                    f"{where}: the table `{node.sql(dialect='duckdb')}` must be read from the source "
                    f"database, written {catalog}.{node.name}",
                )
    return text


__all__ = ["ALLOWED_FUNCTION_NAMES", "PORTABLE_FUNCTION_NAMES", "check_portable", "check_source_query", "ALLOWED_NODES", "METRIC_REFERENCE", "ModelSQLError", "check_expression"]
