"""Stylesheet rules that can hide text, applied to the elements they select as inline style.

A footer item inside `<div class="x">` with `<style>.x{display:none}</style>` in the head is
as hidden as one with `style="display:none"`. tinycss2 parses the `<style>` elements; lexbor
selects the elements each top-level rule matches; the rule's visibility and colour
declarations are merged into each element's `style` attribute, where the renderer already
judges them (gateway/content/html.py).

The cascade is modelled as far as hiding needs: an inline declaration beats the stylesheet
unless only the stylesheet's is `!important`; among rules, the later one wins (specificity
is not computed). Rules inside at-rules (`@media` variants for small screens, dark mode),
selectors with a pseudo-class of user action (`:hover`, `:focus` ...) and pseudo-elements
(`::before`) are left out: they do not describe the text a reader sees when the message
opens. Structural pseudo-classes (`td:first-child`, `:not(.x)`) and attribute selectors
(`a[href^="http:"]`) are kept: they select what is on screen.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from itertools import pairwise

import tinycss2
from selectolax.lexbor import LexborHTMLParser, LexborNode

# The properties the renderer reads to decide whether text is hidden.
VISIBILITY_PROPERTIES = frozenset({
    "display", "visibility", "opacity", "font-size", "color", "background-color", "background",
    "background-image", "height", "max-height", "overflow", "position", "left", "top",
    "text-indent", "margin-left", "margin-top",
})
MAX_RULES = 2000  # a stylesheet larger than any real template: the rest is not applied
MAX_MATCHES = 20000
# States that exist only while the reader acts (pointer, keyboard, a visited link).
USER_ACTION_PSEUDO_CLASSES = frozenset({
    "hover", "active", "focus", "focus-within", "focus-visible", "visited", "target",
})

_Declarations = dict[str, tuple[str, bool]]  # property -> (value, important)
_IMPORTANT = re.compile(r"!\s*important", re.IGNORECASE)


@lru_cache(maxsize=256)
def _rules(css: str) -> tuple[tuple[tuple[str, ...], _Declarations], ...]:
    # A campaign's messages share one template's stylesheet even when bodies differ.
    return tuple(_parse_rules(css))


def _parse_rules(css: str) -> Iterator[tuple[tuple[str, ...], _Declarations]]:
    """(selectors, visibility declarations) of each top-level rule that has any."""
    for rule in tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True):
        if rule.type != "qualified-rule":
            continue  # at-rules (@media, @font-face ...) and parse errors
        declarations: _Declarations = {}
        for decl in tinycss2.parse_declaration_list(
            rule.content, skip_comments=True, skip_whitespace=True
        ):
            if decl.type == "declaration" and decl.lower_name in VISIBILITY_PROPERTIES:
                value = tinycss2.serialize(decl.value).strip()
                if value:
                    declarations[decl.lower_name] = (value, decl.important)
        if not declarations:
            continue
        selectors = tuple(_static_selectors(rule.prelude))
        if selectors:
            yield selectors, declarations


def _static_selectors(prelude: list[tinycss2.ast.Node]) -> Iterator[str]:
    """The prelude's comma-separated selectors, except those of a user action or pseudo-element.

    Works on tokens, not text: a ":" inside an attribute selector or a string
    (`a[href^="http:"]`) is not a pseudo-class.
    """
    selector: list[tinycss2.ast.Node] = []
    for token in [*prelude, None]:
        if token is None or (token.type == "literal" and token.value == ","):
            if not _depends_on_user_action(selector):
                text = tinycss2.serialize(selector).strip()
                if text:
                    yield text
            selector = []
        else:
            selector.append(token)


def _depends_on_user_action(tokens: list[tinycss2.ast.Node]) -> bool:
    """Whether a top-level ":" starts a pseudo-element or a pseudo-class of user action."""
    for colon, name in pairwise(tokens):
        if colon.type != "literal" or colon.value != ":":
            continue
        if name.type == "literal" and name.value == ":":
            return True
        if getattr(name, "lower_value", None) in USER_ACTION_PSEUDO_CLASSES:
            return True
    return False


def _parse_inline(style: str) -> _Declarations:
    declarations: _Declarations = {}
    for decl in style.split(";"):
        name, sep, value = decl.partition(":")
        if not sep:
            continue
        value, important = _IMPORTANT.subn("", value)
        value = value.strip()
        if value:
            declarations[name.strip().lower()] = (value, bool(important))
    return declarations


def _style_text(declarations: _Declarations) -> str:
    return ";".join(f"{name}:{value}" for name, (value, _) in declarations.items())


def apply_stylesheets(tree: LexborHTMLParser) -> int:
    """Merge hiding-relevant stylesheet rules into inline styles; the number of elements changed."""
    css = "\n".join(node.text(deep=True) for node in tree.css("style"))
    if not css.strip():
        return 0
    from_sheet: dict[int, tuple[LexborNode, _Declarations]] = {}
    rules = matches = 0
    for selectors, declarations in _rules(css):
        rules += 1
        if rules > MAX_RULES or matches > MAX_MATCHES:
            break
        for selector in selectors:
            if matches > MAX_MATCHES:
                break
            try:
                nodes = tree.css(selector)
            except Exception:  # a selector lexbor does not support selects nothing here
                continue
            for node in nodes:
                matches += 1
                if matches > MAX_MATCHES:
                    break
                key = node.mem_id
                entry = from_sheet.setdefault(key, (node, {}))[1]
                for name, (value, important) in declarations.items():
                    if important or not entry.get(name, ("", False))[1]:
                        entry[name] = (value, important)
    for node, sheet in from_sheet.values():
        inline = _parse_inline(node.attributes.get("style") or "")
        merged = dict(sheet)
        for name, (value, important) in inline.items():
            if important or not sheet.get(name, ("", False))[1]:
                merged.pop(name, None)  # keep the inline one, in its place after the sheet's
                merged[name] = (value, important)
        node.attrs["style"] = _style_text(merged)
    return len(from_sheet)
