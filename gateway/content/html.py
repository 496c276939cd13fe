"""Turn an HTML body into the text a reader sees, the text hidden by inline CSS, and its links."""

from __future__ import annotations

import re
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = ["HtmlText", "Link", "html_to_text"]

# Never rendered in a mail client's body view: not "hidden text", just not text.
_DROP = frozenset({"script", "style", "head", "template", "noscript", "title", "meta", "link",
                   "-comment", "object", "iframe", "svg", "math", "select", "button"})
_BLOCK = frozenset({"p", "div", "li", "ul", "ol", "tr", "table", "tbody", "thead", "tfoot", "h1",
                    "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "section", "article",
                    "header", "footer", "center", "dd", "dt", "dl", "address", "form", "nav",
                    "main", "aside", "figure", "figcaption", "body", "caption", "fieldset"})
_CELL = frozenset({"td", "th"})
_WS = re.compile(r"[ \t\r\n\f]+")
# Attributes that never change visibility or colour: skip the style machinery for them.
_INERT = frozenset({"href", "class", "id", "width", "height", "align", "valign", "alt", "src",
                    "border", "cellpadding", "cellspacing", "target", "rel", "title", "name",
                    "lang", "dir", "role", "colspan", "rowspan", "type", "charset", "size"})

# Thresholds for "too small to read": legal.md §1.5/§4.2 (tiny text risks a display violation).
_MIN_PX = 4.0
_NAMED = {"white": (255, 255, 255), "black": (0, 0, 0), "red": (255, 0, 0), "green": (0, 128, 0),
          "blue": (0, 0, 255), "gray": (128, 128, 128), "grey": (128, 128, 128),
          "silver": (192, 192, 192), "yellow": (255, 255, 0), "navy": (0, 0, 128),
          "whitesmoke": (245, 245, 245), "snow": (255, 250, 250), "ivory": (255, 255, 240),
          "ghostwhite": (248, 248, 255), "lightgray": (211, 211, 211),
          "lightgrey": (211, 211, 211), "orange": (255, 165, 0), "transparent": (-1, -1, -1)}
_COLOR_RE = re.compile(r"#[0-9a-f]{3,8}\b|rgba?\([^)]*\)|\b[a-z]+\b")
_TRANSPARENT = (-1, -1, -1)
_Color = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Link:
    """An <a href>: target, anchor text and the anchor's span in the visible or hidden text."""

    href: str
    text: str
    start: int
    end: int
    hidden: bool = False


@dataclass(frozen=True, slots=True)
class HtmlText:
    """Visible text (block structure as line breaks), hidden text, links and why text was hidden."""

    visible: str
    hidden: str
    links: tuple[Link, ...]
    hidden_reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _State:
    hidden: str | None  # reason, or None when visible
    color: _Color
    background: _Color
    pre: bool


class _Buffer:
    """Append-only text with whitespace collapsing and a known length (for link offsets)."""

    __slots__ = ("last", "length", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.last = "\n"

    def text(self, text: str, pre: bool) -> None:
        if not pre:
            text = _WS.sub(" ", text)
            if self.last in " \n" and text.startswith(" "):
                text = text[1:]
        if text:
            self.parts.append(text)
            self.length += len(text)
            self.last = text[-1]

    def brk(self, sep: str = "\n") -> None:
        if self.last == " " and self.parts:
            # Replace a trailing space by the break so lines don't end in blanks.
            tail = self.parts[-1][:-1]
            self.length -= 1
            if tail:
                self.parts[-1] = tail
            else:
                self.parts.pop()
            self.last = self.parts[-1][-1] if self.parts else "\n"
        if self.last != "\n" and (sep == "\n" or self.last != sep):
            self.parts.append(sep)
            self.length += 1
            self.last = sep

    def value(self) -> str:
        return "".join(self.parts).strip()


def _parse_color(value: str) -> _Color | None:
    value = value.strip().lower()
    m = _COLOR_RE.search(value)
    if not m:
        return None
    tok = m.group()
    if tok.startswith("#"):
        h = tok[1:]
        if len(h) in (3, 4):
            return (int(h[0] * 2, 16), int(h[1] * 2, 16), int(h[2] * 2, 16))
        if len(h) in (6, 8):
            if len(h) == 8 and h[6:] == "00":
                return _TRANSPARENT
            return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
        return None
    if tok.startswith("rgb"):
        nums = re.findall(r"[\d.]+%?", tok)
        if len(nums) < 3:
            return None
        try:
            if len(nums) >= 4 and float(nums[3].rstrip("%")) == 0:
                return _TRANSPARENT
            rgb = [float(x[:-1]) * 2.55 if x.endswith("%") else float(x) for x in nums[:3]]
        except ValueError:
            return None
        return (int(rgb[0]), int(rgb[1]), int(rgb[2]))
    return _NAMED.get(tok)


def _font_px(value: str) -> float | None:
    m = re.match(r"\s*([\d.]+)\s*(px|pt|em|rem|%)?", value)
    if not m:
        return None
    try:
        size = float(m.group(1))
    except ValueError:
        return None
    unit = m.group(2) or "px"
    return size * {"px": 1.0, "pt": 4 / 3, "em": 16.0, "rem": 16.0, "%": 0.16}[unit]


def _close(a: _Color, b: _Color) -> bool:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) <= 24


def _derive(parent: _State, tag: str, attrs: dict[str, str | None]) -> _State:
    """Apply one element's inline CSS and presentational attributes to the inherited state."""
    hidden = parent.hidden
    color = parent.color
    background = parent.background
    pre = parent.pre or tag in ("pre", "textarea", "plaintext", "xmp")
    if "hidden" in attrs and hidden is None:
        hidden = "hidden attribute"
    if tag == "font" and attrs.get("color"):
        color = _parse_color(attrs["color"] or "") or color
    if attrs.get("bgcolor"):
        background = _parse_color(attrs["bgcolor"] or "") or background
    style = attrs.get("style")
    if style:
        height_zero = False
        overflow_hidden = False
        for decl in style.lower().split(";"):
            prop, _, val = decl.partition(":")
            prop = prop.strip()
            val = val.replace("!important", "").strip()
            if not val:
                continue
            if prop == "display" and val == "none":
                hidden = hidden or "display:none"
            elif prop == "visibility" and val in ("hidden", "collapse"):
                hidden = hidden or "visibility:hidden"
            elif prop == "opacity":
                try:
                    if float(val.rstrip("%")) <= (5 if val.endswith("%") else 0.05):
                        hidden = hidden or "opacity:0"
                except ValueError:
                    pass
            elif prop == "font-size":
                px = _font_px(val)
                if px is not None and px <= _MIN_PX:
                    hidden = hidden or "font-size:0"
            elif prop == "color":
                color = _parse_color(val) or color
            elif prop in ("background-color", "background"):
                background = _parse_color(val) or background
            elif prop in ("max-height", "height") and re.match(r"0(?:px|pt|em|%)?$", val):
                height_zero = True
            elif prop == "overflow" and val == "hidden":
                overflow_hidden = True
        if height_zero and overflow_hidden:
            hidden = hidden or "height:0;overflow:hidden"
    if hidden is None and (color != parent.color or background != parent.background) and (
            color == _TRANSPARENT or (background != _TRANSPARENT and _close(color, background))):
        hidden = "text colour equals background"
    return _State(hidden, color, background, pre)


def html_to_text(html: str) -> HtmlText:
    """Render `html` to visible text, hidden text and links; never raises on bad markup."""
    tree = LexborHTMLParser(html)
    root = tree.body or tree.root
    visible = _Buffer()
    hidden = _Buffer()
    links: list[Link] = []
    reasons: dict[str, None] = {}
    if root is None:
        return HtmlText("", "", ())
    top = _State(None, (0, 0, 0), (255, 255, 255), False)
    # Explicit stack, not recursion: hostile mail can nest elements thousands deep.
    # Items: (node, state) to enter, or (None, exit-record) to close an element.
    stack: list[tuple[LexborNode | None, _State, tuple[str, int, str | None] | None]] = [
        (root, top, None)
    ]
    while stack:
        node, state, exit_rec = stack.pop()
        if node is None:
            assert exit_rec is not None
            kind, start, href = exit_rec
            buf = hidden if state.hidden else visible
            if href is not None:
                end = buf.length
                text = "".join(buf.parts)[start:end].strip() if end > start else ""
                links.append(Link(href, text, start, end, state.hidden is not None))
            if kind == "block":
                buf.brk()
            elif kind == "cell":
                buf.brk(" ")
            continue
        tag = node.tag
        if tag == "-text":
            buf = hidden if state.hidden else visible
            buf.text(node.text_content or "", state.pre)
            continue
        if tag is None or tag in _DROP:
            continue
        attrs = node.attributes
        cur = _derive(state, tag, attrs) if (attrs and not _INERT.issuperset(attrs)) else state
        if cur.pre != state.pre and tag == "pre":
            cur = _State(cur.hidden, cur.color, cur.background, True)
        if cur.hidden and not state.hidden:
            reasons[cur.hidden] = None
        buf = hidden if cur.hidden else visible
        if tag == "br":
            buf.brk()
            continue
        block = tag in _BLOCK
        if block:
            buf.brk()
        href = attrs.get("href") if tag == "a" else None
        kind = "block" if block else "cell" if tag in _CELL else "inline"
        stack.append((None, cur, (kind, buf.length, href.strip() if href else None)))
        children = list(node.iter(include_text=True))
        for child in reversed(children):
            stack.append((child, cur, None))
    links.sort(key=lambda lk: (lk.hidden, lk.start))
    return HtmlText(_finish(visible), _finish(hidden), tuple(links), tuple(reasons))


def _finish(buf: _Buffer) -> str:
    # Keep offsets valid for links: only strip at the end, never at the start.
    return "".join(buf.parts).rstrip()
